"""TrackSSM-nuScenes: nuScenes -> 12 Hz multi-camera MOT sequences, TrackSSM fine-tuning and evaluation."""
from trackssm_lib.constants import CAMERAS, CLASS_IDS, CLASS_NAMES, tracking_class

__version__ = "0.1.0"
__all__ = ["CAMERAS", "CLASS_IDS", "CLASS_NAMES", "tracking_class", "__version__"]
