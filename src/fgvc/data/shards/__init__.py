"""Data larger than a disk: any data source packed into shards (``fgvc data pack``) and read back as a
data source (``data.name: shards``) from a local folder or an http(s) URI.

Two formats, neither of them ours: LitData's chunk format (what ``litdata.optimize`` writes; read here
by LitData's ``StreamingDataset``, random access by byte range, so fgvc's own seeded sampler, transforms
and exact resume stay as they are for every source) and WebDataset tars, the interchange format timm's
reader and the Hugging Face Hub read. ``manifest.json`` beside the splits names the classes, the counts
per split, the source's fingerprint and the format version.
"""

from fgvc.data.shards.manifest import FORMAT_VERSION, MANIFEST, Manifest

__all__ = ["FORMAT_VERSION", "MANIFEST", "Manifest"]
