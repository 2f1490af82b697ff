"""signver: offline handwritten signature verification.

    import signver
    result = signver.verify("reference.png", "questioned.png")
    result.verified, result.distance, result.threshold
"""

from .api import VerificationResult, embed, verify
from .cleaner import clean
from .detector import Box, detect
from .errors import SignverError
from .images import load_image, load_pages
from .normalize import normalize
from .pipeline import Pipeline

__all__ = ["Box", "Pipeline", "SignverError", "VerificationResult", "clean", "detect", "embed", "load_image", "load_pages", "normalize", "verify"]
__version__ = "0.1.0"
