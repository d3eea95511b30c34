"""Names the template, the handlers, the local mode and the tests share.

Bucket prefixes and event names live here once; tests check that template.yaml uses the same.
"""

# Our own EventBridge source: Comprehend publishes no status events, so the watch stage polls
# and publishes these (AWS-FACTS: "Comprehend recognizer training / detection job status").
EVENT_SOURCE = "nerloop"
RECOGNIZER_STATUS_DETAIL_TYPE = "Recognizer Status Change"
DETECTION_JOB_STATUS_DETAIL_TYPE = "Detection Job Status Change"
DOCUMENTS_ADDED_DETAIL_TYPE = "Documents Added"  # preprocess: a batch of new documents joined the pool
# --- continuation (issue 13): a stage that ran short of time continues in a fresh invocation ---
STAGE_CONTINUED_DETAIL_TYPE = "Stage Continued"
# --- end continuation ---

# Events AWS services publish.
S3_OBJECT_CREATED = "Object Created"
LABELING_JOB_DETAIL_TYPE = "SageMaker Ground Truth Labeling Job State Change"
HUMAN_LOOP_DETAIL_TYPE = "SageMaker A2I HumanLoop Status Change"

# S3 layout of the data bucket.
RAW_PREFIX = "raw/"  # raw/<name>.txt, dropped by people
BATCHES_PREFIX = "batches/"  # batches/<name>/documents.txt + input.manifest (preprocess)
LABELING_PREFIX = "labeling/"  # Ground Truth output path
TRAINING_PREFIX = "training/"  # training/<version>/documents.txt + annotations.csv
DETECTION_INPUT_PREFIX = "detection/input/"  # detection/input/<run>/documents.txt
DETECTION_OUTPUT_PREFIX = "detection/output/"  # Comprehend writes <account>-NER-<jobId>/output/output.tar.gz
# The gate (nerloop.evaluation): its detection jobs over a snapshot's test set write under output/,
# where the route stage does not look; results/<version>.json holds a version's per-document results.
EVALUATION_PREFIX = "evaluation/"
EVALUATION_OUTPUT_PREFIX = EVALUATION_PREFIX + "output/"
EVALUATION_RESULTS_PREFIX = EVALUATION_PREFIX + "results/"
REVIEW_OUTPUT_PREFIX = "reviews/"  # A2I flow definition output path
QUARANTINE_PREFIX = "quarantine/"  # quarantine/<stage>/<source>.jsonl
REPORTS_PREFIX = "reports/"  # human-readable reports (e.g. what a training set lacks)
CHECKPOINTS_PREFIX = "checkpoints/"  # checkpoints/<stage>/<source>/<sequence>/: where a stage stopped
FLYWHEEL_DATA_LAKE_PREFIX = "flywheel/"  # TrainingMode Flywheel: the data lake Comprehend manages (issue 15 part 2)

DOCUMENTS_FILE = "documents.txt"
ANNOTATIONS_FILE = "annotations.csv"
INPUT_MANIFEST_FILE = "input.manifest"

# Comprehend custom entity recognizer limits for plain-text annotations ("Guidelines and quotas",
# Entity recognition / Quotas for custom models, "Plain text entity recognition - training":
# https://docs.aws.amazon.com/comprehend/latest/dg/guidelines-and-limits.html): documents 1-5,000 bytes,
# 3-120,000 documents, a corpus of 5 KB - 100 MB, at least 25 annotations per entity type.
MAX_DOCUMENT_BYTES = 5000
MIN_ANNOTATIONS_PER_TYPE = 25
MIN_TRAINING_DOCUMENTS = 3
MAX_TRAINING_DOCUMENTS = 120_000
MIN_CORPUS_BYTES = 5 * 1024
# The page does not say whether an MB is 10^6 or 2^20 bytes: the stricter reading, so a snapshot
# that passes here passes either way.
MAX_CORPUS_BYTES = 100 * 1000 * 1000
MAX_ENTITY_TYPES = 25
MAX_TYPE_NAME_LENGTH = 64
# Comprehend runs at most 10 concurrent active async jobs per job type and account ("Guidelines and
# quotas", Concurrent active asynchronous jobs: https://docs.aws.amazon.com/comprehend/latest/dg/guidelines-and-limits.html).
MAX_CONCURRENT_DETECTION_JOBS = 10
# An async custom analysis job reads at most 1,000,000 lines of ONE_DOC_PER_LINE input, over all its files
# ("Inputs for asynchronous custom analysis": https://docs.aws.amazon.com/comprehend/latest/dg/idp-inputs-async.html).
MAX_DETECTION_LINES = 1_000_000
# Ground Truth input manifest: a line is at most 100,000 characters.
MAX_MANIFEST_LINE_CHARS = 100_000

# The A2I worker template's element name; its answer is keyed by it.
CROWD_ELEMENT_NAME = "crowd-entity-annotation"
