"""The watch stage's detection job status changes; the models live with the detect function's other
events (nerloop.event_models.loop), which it builds at cold start."""

from nerloop.event_models.loop import DetectionJobStatusChange, DetectionJobStatusDetail

__all__ = ["DetectionJobStatusChange", "DetectionJobStatusDetail"]
