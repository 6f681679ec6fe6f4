"""The JSON-lines protocol's table, written once: its version, the ops and the limits (docs/protocol.md).

Pure Python with no imports, so both ends use it: :mod:`dposer.serve.server` and the Blender add-on's client
(``blender_dposer.backend_client``, in Blender's own Python, without torch).
"""

PROTOCOL = 1

# Limits: written once here, reported by the 'version' op (Server.info) and documented in docs/protocol.md, §5.
MAX_LINE_BYTES = 32 * 1024 * 1024  # one request line, without its newline
MAX_FRAMES = 20000  # rows of a clip (clean, complete with clip)
MAX_POSES = 1000  # rows of a pose (complete without clip, refine, fit) and n (vary, sample)
MAX_HYPOTHESES = 32
MAX_N = 1000
MAX_STEPS = 2000
# Work of one task: poses x hypotheses x solver iterations (or sampler steps). The largest clean (20,000 frames x
# 120 iterations) is the bound; e.g. complete with 1,000 poses x 32 hypotheses x 100 iterations (3.2 M) is refused.
MAX_WORK = 2_400_000
MAX_QUEUE = 16  # tasks waiting behind the running one
MAX_ID_CHARS = 256
MAX_ECHO_CHARS = 200  # a value from the request quoted in an error message
MAX_MESSAGE_CHARS = 1000  # an error message as a whole
MAX_SEED = 2**63 - 1
PROGRESS_MESSAGES = 20  # at most this many progress messages per request
LIMITS = {"max_line_bytes": MAX_LINE_BYTES, "max_frames": MAX_FRAMES, "max_poses": MAX_POSES,
          "max_hypotheses": MAX_HYPOTHESES, "max_n": MAX_N, "max_steps": MAX_STEPS, "max_work": MAX_WORK,
          "max_queue": MAX_QUEUE, "max_id_chars": MAX_ID_CHARS, "max_echo_chars": MAX_ECHO_CHARS,
          "max_message_chars": MAX_MESSAGE_CHARS}

TASK_OPS = ("complete", "clean", "vary", "refine", "fit", "sample", "fill")
CONTROL_OPS = ("ping", "version", "cancel", "shutdown")
OPS = CONTROL_OPS + TASK_OPS
FINAL_TYPES = ("result", "error")  # reply types that end a request (the others: "ready", "progress")
