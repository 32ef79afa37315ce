"""Speech synthesis with libespeak-ng, called in-process through ctypes.

The ``espeakng-loader`` package ships ``libespeak-ng`` and its voice data, so
no system package is needed. The library is driven in synchronous mode with a
synth callback that collects 22,050 Hz int16 samples.

Determinism: espeak-ng keeps static synthesiser state (pitch flutter, filter
phases, ``rand()``) across utterances, so the same text can come out slightly
different within one process. :func:`synthesize` therefore runs every batch
in a fresh worker process and seeds libc's ``rand`` after initialising: the same
utterances in the same order give byte-identical audio.
"""

from __future__ import annotations

import ctypes
import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from avkit.errors import DatasetBuildError

log = logging.getLogger(__name__)

#: espeak-ng's output sample rate.
ESPEAK_SAMPLE_RATE = 22050

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE, _ESPEAK_PITCH = 1, 3
_ESPEAK_CHARS_UTF8 = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class Utterance:
    """What to say and how.

    Attributes:
        text: the words.
        voice: espeak voice name, ``language+variant`` (for example ``en-us+f3``).
        rate: speaking rate in words per minute (80 to 450).
        pitch: base pitch, 0 to 99 (50 is the voice's default).
    """

    text: str
    voice: str
    rate: int = 175
    pitch: int = 50


class _Espeak:
    """Thin ctypes binding to libespeak-ng (used inside the worker process only)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader

            self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = espeakng_loader.get_data_path()
        except (ImportError, OSError) as exc:
            raise DatasetBuildError(
                f"libespeak-ng could not be loaded from the espeakng-loader package ({exc}); "
                "install it with `pip install espeakng-loader`"
            ) from None
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate != ESPEAK_SAMPLE_RATE:
            raise DatasetBuildError(f"espeak_Initialize failed or gave rate {rate} (data at {data_path})")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, samples, count, _events) -> int:  # noqa: ANN001 (ctypes signature)
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0 = continue synthesis

    def say(self, utt: Utterance) -> np.ndarray:
        """Synthesize one utterance to int16 samples at 22,050 Hz; raise ValueError if it fails."""
        if self.lib.espeak_SetVoiceByName(utt.voice.encode()) != 0:
            raise ValueError(f"unknown espeak voice {utt.voice!r}")
        self.lib.espeak_SetParameter(_ESPEAK_RATE, int(utt.rate), 0)
        self.lib.espeak_SetParameter(_ESPEAK_PITCH, int(utt.pitch), 0)
        self._chunks = []
        text = utt.text.encode("utf-8") + b"\0"
        err = self.lib.espeak_Synth(text, len(text), 0, 0, 0, _ESPEAK_CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if err != 0:
            raise ValueError(f"espeak_Synth failed with code {err} for {utt}")
        if not self._chunks:
            raise ValueError(f"espeak produced no audio for {utt}")
        return np.concatenate(self._chunks)


def _synthesize_here(utterances: Sequence[Utterance], seed: int) -> list[np.ndarray | str]:
    """Worker body: a sample array per utterance, or the error message if it failed."""
    engine = _Espeak()
    # espeak_Initialize seeds both espeak's own generator (breath noise of the
    # female variants) and libc's rand() (Klatt noise) from the clock: reseed both.
    engine.lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
    ctypes.CDLL(None).srand(ctypes.c_uint(seed & 0xFFFFFFFF))
    out: list[np.ndarray | str] = []
    for utt in utterances:
        try:
            out.append(engine.say(utt))
        except ValueError as exc:
            out.append(str(exc))
    return out


def synthesize(utterances: Sequence[Utterance], seed: int = 0) -> list[np.ndarray | str]:
    """Synthesize utterances in a fresh worker process, deterministically for a seed.

    The worker is ``python -m avkit.data.speech`` (not a multiprocessing
    child, which would re-import the caller's ``__main__``).

    Returns:
        For each utterance, int16 samples ``(T,)`` at :data:`ESPEAK_SAMPLE_RATE`,
        or a string saying why it failed (unknown voice, no audio).
    """
    if not utterances:
        return []
    request = {"seed": int(seed), "utterances": [asdict(u) for u in utterances]}
    with tempfile.TemporaryDirectory(prefix="avkit-espeak-") as tmp:
        result = Path(tmp) / "speech.npz"
        proc = subprocess.run(
            [sys.executable, "-m", "avkit.data.speech", str(result)],
            input=json.dumps(request).encode(),
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise DatasetBuildError(f"the espeak-ng worker failed (exit {proc.returncode}): {tail[0]}")
        with np.load(result) as data:
            return [
                data[f"a{i}"] if f"a{i}" in data.files else str(data[f"e{i}"])
                for i in range(len(utterances))
            ]


def _worker_main(out_path: str) -> None:
    """Entry point of the worker: JSON request on stdin, ``.npz`` of results at ``out_path``."""
    request = json.loads(sys.stdin.buffer.read())
    results = _synthesize_here([Utterance(**u) for u in request["utterances"]], request["seed"])
    arrays = {(f"a{i}" if isinstance(r, np.ndarray) else f"e{i}"): np.asarray(r) for i, r in enumerate(results)}
    np.savez(out_path, **arrays)


if __name__ == "__main__":
    _worker_main(sys.argv[1])
