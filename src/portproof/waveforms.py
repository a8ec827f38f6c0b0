"""Audio inputs: WAV files read with the standard library (PCM 8, 16 or 32 bit, any number of channels, mixed
down to mono), or seeded random waveforms. A file at another sampling rate than the model's is skipped with
the reason: resampling would change what is compared.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from .errors import InputError, describe

SAMPLE_TYPES = {1: (np.uint8, 128.0, 128.0), 2: (np.int16, 0.0, 32768.0), 4: (np.int32, 0.0, 2147483648.0)}
RANDOM_SECONDS = 1.0


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """The samples as float32 in [-1, 1], mono, and the sampling rate."""
    with wave.open(str(path), "rb") as stream:
        width, channels, rate = stream.getsampwidth(), stream.getnchannels(), stream.getframerate()
        if width not in SAMPLE_TYPES:
            raise ValueError(f"{8 * width}-bit samples; portproof reads 8-, 16- and 32-bit PCM")
        frames = stream.readframes(stream.getnframes())
    dtype, offset, scale = SAMPLE_TYPES[width]
    samples = (np.frombuffer(frames, dtype=dtype).astype(np.float32) - offset) / scale
    if samples.size == 0:
        raise ValueError("no samples")
    return samples.reshape(-1, channels).mean(axis=1), rate


def folder_waveforms(folder: str, rate: int, count: int) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Up to `count` waveforms from the WAV files of `folder` at `rate` Hz (cycled when there are fewer), their
    file names, and the files skipped with the reason."""
    directory = Path(folder).expanduser()
    if not directory.is_dir():
        raise InputError(f"inputs {folder}: an audio model takes a folder of WAV files (or random)")
    waves, names, skipped = [], [], []
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        if len(waves) == count:
            break
        try:
            samples, file_rate = read_wav(path)
        except (wave.Error, ValueError, EOFError, OSError) as error:
            skipped.append(f"{path.name}: not a readable WAV file ({describe(error)})")
            continue
        if file_rate != rate:
            skipped.append(f"{path.name}: sampled at {file_rate} Hz, the model takes {rate} Hz; resample it")
            continue
        waves.append(samples)
        names.append(path.name)
    if not waves:
        why = f" ({'; '.join(skipped[:3])})" if skipped else ""
        raise InputError(f"no usable WAV file in the inputs folder {folder}{why}; give {rate} Hz PCM WAV files")
    readable = len(waves)
    for i in range(readable, count):
        waves.append(waves[i % readable])
        names.append(names[i % readable])
    return waves, names, skipped


def random_waveforms(count: int, rate: int, seed: int) -> list[np.ndarray]:
    """`count` seeded standard-normal waveforms of RANDOM_SECONDS each."""
    generator = np.random.default_rng(seed)
    return [generator.standard_normal(int(rate * RANDOM_SECONDS)).astype(np.float32) for _ in range(count)]
