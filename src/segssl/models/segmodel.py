"""Segmentation models from segmentation-models-pytorch, exposing full-resolution pixel features.

Dense self-supervised methods and probes need a feature vector per input pixel, not just class
logits, so every model here returns the decoder output upsampled to the input size (`features`)
and applies a light head on it (`logits`). Inputs of any size work: they are padded to the
encoder's stride and cropped back.
"""

from __future__ import annotations

from pathlib import Path

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from segssl.errors import SegsslError

ARCHS = {
    "unet": "Unet",
    "unet++": "UnetPlusPlus",
    "unetplusplus": "UnetPlusPlus",
    "fpn": "FPN",
    "deeplabv3+": "DeepLabV3Plus",
    "deeplabv3plus": "DeepLabV3Plus",
}


class SegModel(nn.Module):
    """encoder -> decoder -> (full-res features, logits). `feature_dim` is the pixel-feature size."""

    def __init__(
        self,
        num_classes: int,
        arch: str = "unet",
        encoder: str = "resnet18",
        encoder_depth: int = 5,
        decoder_channels: list[int] | None = None,
        encoder_weights: str | None = None,
    ):
        super().__init__()
        key = arch.lower()
        if key not in ARCHS:
            raise SegsslError(f"model.arch={arch}: unknown architecture (known: {', '.join(sorted(ARCHS))})")
        kwargs: dict = {"encoder_depth": encoder_depth}
        if decoder_channels is not None:
            if ARCHS[key] in ("Unet", "UnetPlusPlus"):
                kwargs["decoder_channels"] = list(decoder_channels)[:encoder_depth]
            else:  # FPN / DeepLabV3+ take one width
                kwargs["decoder_channels" if ARCHS[key] == "DeepLabV3Plus" else "decoder_segmentation_channels"] = int(
                    decoder_channels[0]
                )
        try:
            net = smp.create_model(
                ARCHS[key], encoder_name=encoder, encoder_weights=None, classes=num_classes, **kwargs
            )
        except (KeyError, ValueError) as e:
            raise SegsslError(f"model.encoder={encoder}: cannot build {arch} ({e})") from None
        self.encoder, self.decoder = net.encoder, net.decoder
        self.stride = 2**encoder_depth
        with torch.no_grad():
            self.eval()
            out = self.decoder(self.encoder(torch.zeros(1, 3, self.stride * 2, self.stride * 2)))
            self.train()
        self.feature_dim = int(out.shape[1])
        self.num_classes = num_classes
        self.head = nn.Conv2d(self.feature_dim, num_classes, kernel_size=1)
        if encoder_weights:
            load_encoder_weights(self.encoder, Path(encoder_weights))

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        return x, h, w

    def decode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Decoder output (maybe below input resolution) and the encoder feature pyramid."""
        x, h, w = self._pad(x)
        feats = self.encoder(x)
        return self.decoder(feats), feats

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel features (B, feature_dim, H, W) at the input's full resolution."""
        h, w = x.shape[-2:]
        d, _ = self.decode(x)
        return _to_size(d, h, w, self.stride)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        h, w = x.shape[-2:]
        d, _ = self.decode(x)
        # the 1x1 head commutes with bilinear upsampling, so apply it before upsampling (cheaper)
        logits = _to_size(self.head(d), h, w, self.stride)
        if return_features:
            return logits, _to_size(d, h, w, self.stride)
        return logits


def _to_size(t: torch.Tensor, h: int, w: int, stride: int = 32) -> torch.Tensor:
    """Decoder map of a padded input -> (h, w): upsample to the padded size, then crop the padding."""
    hp, wp = h + (-h) % stride, w + (-w) % stride
    if t.shape[-2:] != (hp, wp):
        t = F.interpolate(t, size=(hp, wp), mode="bilinear", align_corners=False)
    return t[..., :h, :w]


def load_encoder_weights(encoder: nn.Module, path: Path) -> None:
    """Load an encoder state dict from a local file (never a download)."""
    if not path.is_file():
        raise SegsslError(f"{path}: encoder weights file does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SegsslError(f"{path}: cannot load encoder weights ({type(e).__name__})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise SegsslError(f"{path}: expected a state dict of tensors")
    own = encoder.state_dict()
    wrong = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise SegsslError(
            f"{path}: {len(wrong)} tensors have the wrong shape for this encoder, "
            f"e.g. '{wrong[0]}' (weights of another encoder?)"
        )
    keep = {k: v for k, v in state.items() if k in own}
    if not keep:
        raise SegsslError(f"{path}: no tensor in the file matches the encoder's parameters")
    encoder.load_state_dict(keep, strict=False)


def build_model(model_cfg: dict, num_classes: int) -> SegModel:
    return SegModel(
        num_classes,
        arch=model_cfg.get("arch", "unet"),
        encoder=model_cfg.get("encoder", "resnet18"),
        encoder_depth=int(model_cfg.get("encoder_depth", 5)),
        decoder_channels=model_cfg.get("decoder_channels"),
        encoder_weights=model_cfg.get("encoder_weights"),
    )
