"""FFHQ face alignment (encoder4editing ``utils/alignment.py`` ``align_face``) from 68 dlib-order landmarks.

The steps, as in the official function (output 256 px): an oriented crop quad from the eyes and mouth
corners, an optional "shrink" (PIL LANCZOS, formerly ANTIALIAS) when the quad is more than twice the
output, a crop with a border, reflect padding blended toward a blurred copy (scipy Gaussian, sigma
0.02 qsize) and the median colour near the new edges, then ``Image.transform(QUAD, BILINEAR)``.
Landmarks come from the caller, or from dlib (optional, never required) when it is installed and the user
has its 68-point predictor file (:func:`dlib_landmarks`).
"""
from __future__ import annotations

import os
import pathlib

import numpy as np

from .errors import InputError

OUTPUT_SIZE = 256


def _as_pil(image):
    import PIL.Image

    if isinstance(image, (str, os.PathLike)):
        from .images import read_rgb

        return read_rgb(pathlib.Path(image))
    if isinstance(image, PIL.Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise InputError(f"align_face: image must be a path or an RGB uint8 array (H, W, 3), got "
                         f"{arr.dtype} {arr.shape}")
    return PIL.Image.fromarray(np.ascontiguousarray(arr))  # uint8 (H, W, 3) -> RGB


def crop_quad(landmarks):
    """The oriented crop square from (68, 2) landmarks -> (quad (4, 2) float64, qsize)."""
    lm = np.asarray(landmarks)
    if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
        raise InputError(f"align_face: landmarks must be (68, 2) finite x, y in dlib order, got shape {lm.shape}")
    eye_left = np.mean(lm[36:42], axis=0)
    eye_right = np.mean(lm[42:48], axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, np.hypot(*x) * 2


def align_face(image, landmarks, output_size: int = OUTPUT_SIZE) -> np.ndarray:
    """Align a face the FFHQ way. image: a path, PIL image or RGB uint8 (H, W, 3); landmarks: (68, 2) x, y in
    dlib order (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67) -> (output_size,)*2 + (3,) uint8."""
    import PIL.Image
    import scipy.ndimage

    quad, qsize = crop_quad(landmarks)
    img = _as_pil(image)
    transform_size = output_size

    # Shrink.
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(float(img.size[0]) / shrink)), int(np.rint(float(img.size[1]) / shrink)))
        img = img.resize(rsize, PIL.Image.LANCZOS)
        quad /= shrink
        qsize /= shrink

    # Crop.
    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (int(np.floor(min(quad[:, 0]))), int(np.floor(min(quad[:, 1]))), int(np.ceil(max(quad[:, 0]))),
            int(np.ceil(max(quad[:, 1]))))
    crop = (max(crop[0] - border, 0), max(crop[1] - border, 0), min(crop[2] + border, img.size[0]),
            min(crop[3] + border, img.size[1]))
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[0:2]

    # Pad (reflect, blend toward a blurred copy and the median colour near the new edges).
    pad = (int(np.floor(min(quad[:, 0]))), int(np.floor(min(quad[:, 1]))), int(np.ceil(max(quad[:, 0]))),
           int(np.ceil(max(quad[:, 1]))))
    pad = (max(-pad[0] + border, 0), max(-pad[1] + border, 0), max(pad[2] - img.size[0] + border, 0),
           max(pad[3] - img.size[1] + border, 0))
    if max(pad) > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        arr = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        h, w, _ = arr.shape
        yy, xx, _ = np.ogrid[:h, :w, :1]
        mask = np.maximum(1.0 - np.minimum(np.float32(xx) / pad[0], np.float32(w - 1 - xx) / pad[2]),
                          1.0 - np.minimum(np.float32(yy) / pad[1], np.float32(h - 1 - yy) / pad[3]))
        blur = qsize * 0.02
        arr += (scipy.ndimage.gaussian_filter(arr, [blur, blur, 0]) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
        img = PIL.Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)))
        quad += pad[:2]

    # Transform.
    img = img.transform((transform_size, transform_size), PIL.Image.QUAD, (quad + 0.5).flatten(),
                        PIL.Image.BILINEAR)
    return np.asarray(img, np.uint8)


def dlib_landmarks(image, predictor_path) -> np.ndarray:
    """68 landmarks (68, 2) int64 of the face dlib finds (the last detection, as the official code), using the
    user's ``shape_predictor_68_face_landmarks.dat``. dlib is optional: without it this raises InputError."""
    try:
        import dlib
    except ImportError:
        raise InputError("face alignment from photos needs dlib (pip install dlib) and its 68-landmark predictor "
                         "file; without them pass already aligned 256-px face crops") from None
    predictor_path = pathlib.Path(predictor_path).expanduser()
    if not predictor_path.is_file():
        raise InputError(f"{predictor_path}: dlib landmark predictor file does not exist")
    arr = np.asarray(_as_pil(image))
    dets = dlib.get_frontal_face_detector()(arr, 1)
    if len(dets) == 0:
        where = image if isinstance(image, (str, os.PathLike)) else "image"
        raise InputError(f"{where}: dlib found no face to align")
    shape = dlib.shape_predictor(str(predictor_path))(arr, dets[len(dets) - 1])
    return np.array([[p.x, p.y] for p in shape.parts()], np.int64)
