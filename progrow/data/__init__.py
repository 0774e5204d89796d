"""The multi-resolution data pipeline: sources → a uint8 cache of image pyramids → deterministic minibatches.

```python
from progrow.data import build_cache, MultiResDataset, ImageSampler, to_float

build_cache("photos/", "cache/", resolution=64)          # or `python -m progrow.data photos/ cache/ --resolution 64`
dataset = MultiResDataset("cache/")                     # levels 4², 8², …, 64² as read-only memmaps
sampler = ImageSampler(dataset, seed=0, mirror=True)
images, labels = sampler.next_batch(16, 32, device="cuda")   # uint8 [32, C, 16, 16], labels [32] or None
reals = to_float(images)                                # [-1, 1] on the device
```

Modules: `synthetic` (the built-in `SyntheticShapes`), `sources` (folder / zip / synthetic, the channel
rule), `convert` (the Pillow mode rule), `resize` (the crop/resize policy), `layout` (the cache format),
`cache` (`build_cache`), `dataset` (`MultiResDataset`), `loader` (`ImageSampler`, `to_float`),
`prefetch` (`Prefetcher`: read-ahead on background threads, same batches), `cli`.
"""

from progrow.data.cache import box_downsample_u8, build_cache
from progrow.data.dataset import MultiResDataset
from progrow.data.errors import DataError
from progrow.data.loader import ImageSampler, to_float
from progrow.data.prefetch import Prefetcher
from progrow.data.resize import Crop
from progrow.data.sources import Channels, ImageSource, open_source
from progrow.data.synthetic import SyntheticShapes

__all__ = [
    "SyntheticShapes",
    "ImageSource",
    "open_source",
    "Crop",
    "Channels",
    "build_cache",
    "box_downsample_u8",
    "MultiResDataset",
    "ImageSampler",
    "Prefetcher",
    "to_float",
    "DataError",
]
