import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

try:  # tiny models: one thread is fastest, and the test machine is shared
    import torch

    torch.set_num_threads(1)
except ImportError:
    pass
