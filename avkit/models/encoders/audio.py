"""Audio encoders: a VGG-style CNN on log-mels, and a SoundNet-style raw-waveform 1-D CNN."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from avkit.audio.transforms import LogMelSpectrogram
from avkit.models.encoders.base import ENCODERS, EncoderOutput, conv_bn_relu


@ENCODERS.register("logmel_cnn")
class LogMelCNN(nn.Module):
    """VGGish-like 2-D CNN over a log-mel spectrogram, with the front-end built in.

    Shapes:
        ``input="waveform"``: ``(B, T)`` at ``sample_rate``; the batched
        :class:`~avkit.audio.transforms.LogMelSpectrogram` (25 ms Hamming
        windows, 10 ms hop) runs on the model's device.
        ``input="logmel"``: ``(B, 1, n_mels, frames)`` or ``(B, n_mels, frames)``.
        Output: ``pooled (B, 8 * width)``, ``feature_map (B, 8 * width, n_mels / 16, frames / 16)``.

    Args:
        width: channels of the first block; each of the 4 blocks doubles it
            (two 3x3 conv-BN-ReLU, then 2x2 max-pool).
        input: what ``forward`` takes, the waveform or a precomputed log-mel.
    """

    def __init__(
        self,
        width: int = 32,
        in_channels: int = 1,
        input: Literal["waveform", "logmel"] = "waveform",
        sample_rate: int = 16000,
        n_mels: int = 64,
    ) -> None:
        super().__init__()
        if input not in ("waveform", "logmel"):
            raise ValueError(f"input must be 'waveform' or 'logmel', got {input!r}")
        win = round(0.025 * sample_rate)
        self.frontend = (
            LogMelSpectrogram(sample_rate, n_fft=1 << (win - 1).bit_length(), win_length=win,
                              hop_length=round(0.010 * sample_rate), n_mels=n_mels, top_db=80.0)
            if input == "waveform" else None
        )  # fmt: skip
        self.input_norm = nn.BatchNorm2d(in_channels)  # log-mel dB values are far from unit scale
        chans = [in_channels, width, 2 * width, 4 * width, 8 * width]
        self.blocks = nn.Sequential(*[
            nn.Sequential(conv_bn_relu(chans[i], chans[i + 1]), conv_bn_relu(chans[i + 1], chans[i + 1]), nn.MaxPool2d(2))
            for i in range(4)
        ])  # fmt: skip
        self.out_dim = chans[-1]

    def forward(self, x: Tensor) -> EncoderOutput:
        if self.frontend is not None:
            x = self.frontend(x.flatten(1) if x.dim() == 3 else x)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        fmap = self.blocks(self.input_norm(x))
        return EncoderOutput(pooled=fmap.mean(dim=(-2, -1)), feature_map=fmap)


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
        input ``(B, T)`` or ``(B, 1, T)`` waveform -> ``pooled (B, C7)``,
        ``feature_map (B, C7, t)``, ``intermediates["pool5"] (B, C5, t5)``.
    """

    def __init__(self, width_mult: float = 0.25, layers: int = 7) -> None:
        super().__init__()
        if not 5 <= layers <= 7:
            raise ValueError(f"layers must be 5 to 7 (pool5 must exist), got {layers}")
        convs, cin = [], 1
        for chans, kernel, stride, pool in SOUNDNET_LAYERS[:layers]:
            cout = max(4, int(round(chans * width_mult)))
            layer = [conv_bn_relu(cin, cout, kernel, stride, dims=1)]
            if pool > 1:
                layer.append(nn.MaxPool1d(pool, ceil_mode=True))
            convs.append(nn.Sequential(*layer))
            cin = cout
        self.convs = nn.ModuleList(convs)
        self.out_dim = cin

    def forward(self, wav: Tensor) -> EncoderOutput:
        x = wav.unsqueeze(1) if wav.dim() == 2 else wav
        intermediates = {}
        for i, conv in enumerate(self.convs, start=1):
            x = conv(x)
            if i == 5:
                intermediates["pool5"] = x
        return EncoderOutput(pooled=x.mean(dim=-1), feature_map=x, intermediates=intermediates)
