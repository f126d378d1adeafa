"""TrackSSM model for nuScenes: official-compatible parameters, class conditioning, CPU/CUDA backends."""
from trackssm_lib.model.checkpoint import (
    PROJECT_FORMAT,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    save_official_checkpoint,
)
from trackssm_lib.model.mamba import mamba_ssm_available
from trackssm_lib.model.trackssm import CLASS_PREFIX, TrackSSM, count_parameters

__all__ = [
    "CLASS_PREFIX", "PROJECT_FORMAT", "CheckpointError", "TrackSSM", "count_parameters", "load_checkpoint",
    "mamba_ssm_available", "read_checkpoint", "save_checkpoint", "save_official_checkpoint",
]
