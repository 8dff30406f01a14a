"""Models: creation by name, pretrained weights (hub or local/foreign files), transfer strategies.

Importing this package registers fgvc's own ViTs with timm (``fgvc_vit_cifar``, ``fgvc_vit_tiny``).
"""

from fgvc.models import vit  # noqa: F401  (registers the models with timm)
