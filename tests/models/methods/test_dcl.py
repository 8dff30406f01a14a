"""DCL's parts on tiny tensors: the local shuffle (a permutation, bounded moves), the destroyed image
(the same patches, each where the order says), the alignment targets, the adversarial labels, the
three losses of one training step, and the refusals."""

import pytest
import timm
import torch
import torch.nn.functional as F

from fgvc.config import load_config
from fgvc.errors import ConfigError
from fgvc.models.methods.dcl import (
    Dcl,
    adversarial_labels,
    alignment_targets,
    dcl,
    destroy,
    local_permutations,
    patch_grid,
    region_order,
)


def _labelled_patches(batch, regions, patch, channels=2):
    """(B, C, N*patch, N*patch) images whose every pixel holds (image, patch index) so a patch is
    recognisable wherever it lands: channel 0 = 1000 b + p, channel 1 = p + its offset in the patch / 100."""
    side = regions * patch
    rows = torch.arange(side)[:, None] // patch
    cols = torch.arange(side)[None, :] // patch
    index = (rows * regions + cols).float()
    within = (torch.arange(side)[:, None] % patch * patch + torch.arange(side)[None, :] % patch).float()
    images = torch.stack([index, index + within / 100] + [index] * (channels - 2))
    return images.expand(batch, -1, -1, -1) + 1000 * torch.arange(batch).float().view(-1, 1, 1, 1)


def test_local_permutations_are_permutations_that_move_nothing_more_than_the_range():
    torch.manual_seed(0)
    for length, reach in [(7, 1), (7, 2), (7, 3), (5, 6)]:
        perms = local_permutations((4000, length), reach, torch.device("cpu"))
        assert torch.equal(perms.sort(-1).values, torch.arange(length).expand_as(perms))
        moves = perms - torch.arange(length)
        assert moves.abs().max() <= reach
        if reach < length - 1:  # the bound is reached: the shuffle is not tighter than configured
            assert moves.abs().max() == reach
    # reach 1 is the paper's k = 1: only swaps of neighbours, and some images do swap
    perms = local_permutations((4000, 7), 1, torch.device("cpu"))
    moved = perms != torch.arange(7)
    assert moved.any(1).float().mean() > 0.5 and moved.float().mean() < 0.5


def test_region_order_moves_each_patch_at_most_the_range_across_and_down():
    torch.manual_seed(1)
    n, reach = 7, 2
    order = region_order(3000, n, reach, torch.device("cpu"))
    assert order.shape == (3000, n * n)
    assert torch.equal(order.sort(1).values, torch.arange(n * n).expand_as(order))  # every patch once
    cell = torch.arange(n * n)
    across = (order % n - cell % n).abs()  # the column the patch came from vs the one it is in
    down = (order // n - cell // n).abs()
    assert across.max() == reach and down.max() == reach
    # a patch moved within its row AND within its column: both at once happen
    assert ((across > 0) & (down > 0)).any()


def test_the_destroyed_image_holds_the_same_patches_where_the_order_says():
    torch.manual_seed(2)
    n, patch, batch = 4, 3, 5
    images = _labelled_patches(batch, n, patch)
    order = region_order(batch, n, 2, torch.device("cpu"))
    destroyed = destroy(images, order, n)
    assert destroyed.shape == images.shape and not torch.equal(destroyed, images)
    for b in range(batch):
        for p in range(n * n):
            i, j = divmod(p, n)
            q = order[b, p].item()
            source = images[b, :, q // n * patch:(q // n + 1) * patch, q % n * patch:(q % n + 1) * patch]
            assert torch.equal(destroyed[b, :, i * patch:(i + 1) * patch, j * patch:(j + 1) * patch], source)
    # the same multiset of pixel values image by image: nothing made, nothing lost
    assert torch.equal(destroyed.flatten(1).sort(1).values, images.flatten(1).sort(1).values)
    # the identity order gives the image back
    assert torch.equal(destroy(images, torch.arange(n * n).expand(batch, -1), n), images)


def test_a_side_not_divisible_by_the_regions_shuffles_a_centred_grid_and_keeps_the_margins():
    assert patch_grid(32, 32, 7) == (2, 2, 4, 4)  # 7 x 4 = 28 px: 2 px above, 2 below
    assert patch_grid(23, 30, 7) == (1, 1, 3, 4)  # 21 of 23 rows, 28 of 30 columns: 1 px margins
    torch.manual_seed(3)
    images = torch.rand(2, 3, 23, 30)
    order = torch.stack([torch.randperm(49) for _ in range(2)])
    destroyed = destroy(images, order, 7)
    top, left, ph, pw = patch_grid(23, 30, 7)
    inside = (slice(None), slice(None), slice(top, top + 7 * ph), slice(left, left + 7 * pw))
    margin = torch.ones(23, 30, dtype=torch.bool)
    margin[top:top + 7 * ph, left:left + 7 * pw] = False
    assert torch.equal(destroyed[..., margin], images[..., margin])
    grid = images[inside].reshape(2, 3, 7, ph, 7, pw)
    moved = destroyed[inside].reshape(2, 3, 7, ph, 7, pw)
    for b in range(2):
        for p in range(49):
            q = order[b, p].item()
            assert torch.equal(moved[b, :, p // 7, :, p % 7], grid[b, :, q // 7, :, q % 7])
    with pytest.raises(ConfigError, match="method.dcl.regions is 7 but the images are 6 x 32 px"):
        destroy(torch.rand(1, 3, 6, 32), torch.arange(49)[None], 7)


def test_the_alignment_target_is_the_permutation_normalised_as_the_authors():
    order = torch.tensor([[1, 0, 2, 3], [3, 2, 1, 0]])  # 2 x 2 regions
    # (p - 4 // 2) / 4
    assert torch.equal(alignment_targets(order, 2), torch.tensor([[-0.25, -0.5, 0.0, 0.25], [0.25, 0.0, -0.25, -0.5]]))
    targets = alignment_targets(torch.arange(49)[None], 7)
    assert targets[0, 24] == 0 and targets.min() == -24 / 49 and targets.max() == 24 / 49
    assert torch.equal(targets.argsort(1), torch.arange(49)[None])  # an order-preserving map of the indices


def test_adversarial_labels_originals_then_destroyed():
    targets = torch.tensor([0, 2, 1])
    assert adversarial_labels(targets, 3, "classes").tolist() == [0, 2, 1, 3, 5, 4]
    assert adversarial_labels(targets, 3, "binary").tolist() == [0, 0, 0, 1, 1, 1]


def _dcl(outputs="classes", regions=2, reach=1, adversarial_weight=1.0, alignment_weight=1.0):
    backbone = timm.create_model("resnet10t", pretrained=False, num_classes=3)
    return Dcl(backbone, 3, regions, reach, outputs, adversarial_weight, alignment_weight)


def test_the_training_loss_is_the_three_losses_on_originals_then_destroyed_copies():
    torch.manual_seed(4)
    model = _dcl(regions=3, reach=1, adversarial_weight=0.5, alignment_weight=2.0).eval()  # eval: fixed BN
    images, targets = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 1])
    state = torch.get_rng_state()
    loss, logits = model.training_loss(images, targets, F.cross_entropy)
    # the same draw by hand
    torch.set_rng_state(state)
    order = region_order(4, 3, 1, torch.device("cpu"))
    both = torch.cat([images, destroy(images, order, 3)])
    maps, pooled = model.features(both)
    assert maps.shape[-1] == 2  # a 2 x 2 feature map pooled to 3 x 3 cells (adaptive)
    located = model.locate(maps)
    where_from = alignment_targets(torch.cat([torch.arange(9).expand(4, -1), order]), 3)
    expected = (F.cross_entropy(model.classifier(pooled), torch.cat([targets, targets]))
                + 0.5 * F.cross_entropy(model.adversarial(pooled), torch.tensor([0, 1, 2, 1, 3, 4, 5, 4]))
                + 2.0 * (located - where_from).abs().mean())
    assert torch.allclose(loss, expected, atol=1e-5)
    assert torch.allclose(logits, model(images), atol=1e-5)  # the originals' logits = the prediction
    assert located.shape == (8, 9) and located.abs().max() < 1
    assert model.adversarial.out_features == 6 and _dcl("binary").adversarial.out_features == 2


def test_every_loss_trains_its_own_part():
    torch.manual_seed(5)
    model = _dcl().train()
    loss, logits = model.training_loss(torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]), F.cross_entropy)
    assert logits.shape == (4, 3)
    loss.backward()
    for part in (model.classifier.weight, model.adversarial.weight, model.alignment.weight,
                 next(model.backbone.parameters())):
        assert part.grad is not None and part.grad.abs().sum() > 0


def test_config_reaches_the_model_and_tokens_are_refused():
    cfg = load_config(None, ["method.name=dcl", "method.dcl.regions=5", "method.dcl.shuffle_range=3",
                             "method.dcl.adversarial_outputs=binary"])
    model = dcl(timm.create_model("resnet10t", pretrained=False, num_classes=4), 4, cfg.method)
    assert (model.regions, model.shuffle_range, model.adversarial.out_features) == (5, 3, 2)
    with pytest.raises(Exception, match="adversarial_outputs"):
        load_config(None, ["method.name=dcl", "method.dcl.adversarial_outputs=three"])
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=4, img_size=32)
    with pytest.raises(ConfigError, match="CNN's feature map"):
        Dcl(vit, 4, 2, 1, "classes", 1.0, 1.0)(torch.rand(1, 3, 32, 32))
