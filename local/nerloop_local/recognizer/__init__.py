"""The local stand-in for a Comprehend custom entity recognizer: a linear-chain CRF and its features."""
