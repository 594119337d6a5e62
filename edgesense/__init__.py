"""edgesense: sensor signals in, INT8 models on device, decisions out.

The run-time core (profiles, streams, recordings, pipelines, runtimes) needs only numpy, scipy,
onnxruntime, a TFLite interpreter and pyserial; training and export live behind the ``train``
extra and are imported only where used.
"""

from edgesense.errors import EdgesenseError
from edgesense.profiles import (RadarCIRProfile, RDIProfile, SensorProfile, SpeakerIVProfile, SpeakerParams,
                                load_profile)
from edgesense.stream.frame import Frame

__version__ = "0.1.0"

__all__ = [
    "EdgesenseError",
    "Frame",
    "RadarCIRProfile",
    "RDIProfile",
    "SensorProfile",
    "SpeakerIVProfile",
    "SpeakerParams",
    "load_profile",
    "__version__",
]
