"""Audio encoders: a VGG-style CNN on log-mels, and a SoundNet-style raw-waveform 1-D CNN."""

from __future__ import annotations

from torch import Tensor, nn

from avkit.models.encoders.base import (
    ENCODERS,
    EncoderOutput,
    FeatureInfo,
    FeatureMap,
    conv_bn_relu,
    map_lengths,
    masked_mean,
)


@ENCODERS.register("logmel_cnn")
class LogMelCNN(nn.Module):
    """VGGish-like 2-D CNN over a log-mel spectrogram.

    The log-mel front-end belongs to the audio tower (``avkit.models.tower``),
    which computes it on the model's device from the waveform, or reads it from
    a feature cache.

    Shapes:
        input ``(B, n_mels, frames)`` or ``(B, 1, n_mels, frames)`` in dB;
        ``lengths (B,)`` valid frames of a padded batch, or None.
        Output: ``pooled (B, 8 * width)``, ``feature_map (B, 8 * width, n_mels / 16, frames / 16)``.

    Args:
        width: channels of the first block; each of the 4 blocks doubles it
            (two 3x3 conv-BN-ReLU, then 2x2 max-pool).
    """

    def __init__(self, width: int = 32, in_channels: int = 1) -> None:
        super().__init__()
        self.input_norm = nn.BatchNorm2d(in_channels)  # log-mel dB values are far from unit scale
        chans = [in_channels, width, 2 * width, 4 * width, 8 * width]
        self.blocks = nn.Sequential(*[
            nn.Sequential(conv_bn_relu(chans[i], chans[i + 1]), conv_bn_relu(chans[i + 1], chans[i + 1]), nn.MaxPool2d(2))
            for i in range(4)
        ])  # fmt: skip
        self.feature_info = FeatureInfo("logmel", chans[-1], (FeatureMap("map", chans[-1], (16, 16)),))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> EncoderOutput:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        fmap = self.blocks(self.input_norm(x))
        cells = map_lengths(lengths, 16, fmap.shape[-1])
        return EncoderOutput(pooled=masked_mean(fmap, cells), feature_map=fmap, map_lengths=cells)


#: SoundNet's eight conv layers (Aytar et al. 2016): (channels, kernel, stride, max-pool after).
SOUNDNET_LAYERS = (
    (16, 64, 2, 8), (32, 32, 2, 8), (64, 16, 2, 1), (128, 8, 2, 1),
    (256, 4, 2, 4), (512, 4, 2, 1), (1024, 4, 2, 1),
)  # fmt: skip


@ENCODERS.register("soundnet")
class SoundNet1d(nn.Module):
    """SoundNet-style 1-D CNN on the raw waveform, exposing its ``pool5`` features.

    Layers follow SoundNet conv1-conv7 (conv8's heads are task heads, not part
    of the encoder), each conv-BN-ReLU with max-pools after conv1, conv2 and
    conv5 ("pool5"). ``width_mult`` scales every channel count (0.25 trains
    quickly on CPU).

    Shapes:
        input ``(B, T)`` or ``(B, 1, T)`` waveform, ``lengths (B,)`` valid samples or None
        -> ``pooled (B, C7)``, ``feature_map (B, C7, t)``, ``intermediates["pool5"] (B, C5, t5)``.
    """

    def __init__(self, width_mult: float = 0.25, layers: int = 7) -> None:
        super().__init__()
        if not 5 <= layers <= 7:
            raise ValueError(f"layers must be 5 to 7 (pool5 must exist), got {layers}")
        convs, cin, stride, maps = [], 1, 1, []
        for i, (chans, kernel, conv_stride, pool) in enumerate(SOUNDNET_LAYERS[:layers], start=1):
            cout = max(4, int(round(chans * width_mult)))
            layer = [conv_bn_relu(cin, cout, kernel, conv_stride, dims=1)]
            if pool > 1:
                layer.append(nn.MaxPool1d(pool, ceil_mode=True))
            convs.append(nn.Sequential(*layer))
            cin, stride = cout, stride * conv_stride * pool
            if i == 5:
                maps.append(FeatureMap("pool5", cout, (stride,)))
        self.convs = nn.ModuleList(convs)
        self.stride = stride
        self.feature_info = FeatureInfo("waveform", cin, (FeatureMap("map", cin, (stride,)), *maps))

    def forward(self, wav: Tensor, lengths: Tensor | None = None) -> EncoderOutput:
        x = wav.unsqueeze(1) if wav.dim() == 2 else wav
        intermediates = {}
        for i, conv in enumerate(self.convs, start=1):
            x = conv(x)
            if i == 5:
                intermediates["pool5"] = x
        cells = map_lengths(lengths, self.stride, x.shape[-1])
        return EncoderOutput(pooled=masked_mean(x, cells), feature_map=x, intermediates=intermediates, map_lengths=cells)

