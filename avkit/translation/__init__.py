"""Translation across modalities with a trained model: a sound becomes a picture, a picture becomes speech.

    model = load_model("runs/speech-to-image")
    images = speech_to_image(model, batch, decoder="diffusion", generator=torch.Generator().manual_seed(0))
    images = speech_to_image_files(model, ["three.wav"])        # (1, 3, H, W) in [0, 1]

    model = load_model("runs/image-to-speech")
    spoken = image_to_speech_files(model, ["three.png"], beam=5)   # units, attention per unit, waveform
    spoken = image_to_speech_files(model, ["three.png"], matcher=load_model("runs/speech-to-image"), beam=5)

Speech units (``units``): k-means over speech frames, the vocabulary image -> speech decodes
(the spoken part of each clip, its silences trimmed).
"""

from avkit.translation.image_to_speech import (
    Spoken,
    image_to_speech,
    image_to_speech_files,
    image_to_speech_heads,
    matcher_towers,
    save_speech,
)
from avkit.translation.speech_to_image import (
    SpeechToImageHeads,
    speech_to_image,
    speech_to_image_files,
    speech_to_image_heads,
)
from avkit.translation.units import (
    SpeechUnits,
    encode_manifest,
    fit_units,
    has_spoken_units,
    reusable_units,
)

__all__ = ["SpeechToImageHeads", "SpeechUnits", "Spoken", "encode_manifest", "fit_units", "has_spoken_units", "image_to_speech",
           "image_to_speech_files", "image_to_speech_heads", "matcher_towers", "reusable_units", "save_speech", "speech_to_image",
           "speech_to_image_files", "speech_to_image_heads"]
