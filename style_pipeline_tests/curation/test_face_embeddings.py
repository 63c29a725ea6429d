"""find_faces with real weights on real faces: Eileen Collins (scikit-image's astronaut) and
Grace Hopper (matplotlib's sample photo), the OpenCV fallback, and the face cache."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
from PIL import Image

from style_pipeline.contracts.characters import CharacterSettings
from style_pipeline.curation.face_cache import FaceCache, cache_fingerprint
from style_pipeline.curation.face_embeddings import (
    DetectedFace,
    faces_in_files,
    find_faces,
    laplacian_variance,
)
from style_pipeline.models import faces as face_models
from style_pipeline.models.faces import FaceModelsUnavailable, load_face_models
from style_pipeline.parallel import ItemError
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

# 0.3: the astronaut's mission patch scores 0.12 with upsample 1 (her face 1.16)
SETTINGS = CharacterSettings(min_detector_score=0.3)
# where the faces are (x0, y0, x1, y1), by eye
FACE = {"astronaut": (175, 76, 265, 166), "grace_hopper": (180, 139, 366, 325)}


def _astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def _grace() -> np.ndarray:
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        return np.asarray(im.convert("RGB")).copy()


PHOTOS = {"astronaut": _astronaut, "grace_hopper": _grace}


@pytest.fixture(scope="module")
def models():
    return load_face_models(SETTINGS)


@pytest.fixture(scope="module")
def found(models):
    return {name: find_faces(photo(), models, SETTINGS) for name, photo in PHOTOS.items()}


def _resize(image: np.ndarray, factor: float) -> np.ndarray:
    im = Image.fromarray(image)
    size = (round(im.width * factor), round(im.height * factor))
    return np.asarray(im.resize(size, Image.LANCZOS))


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


AUGMENTATIONS = {
    "crop": lambda im: im[im.shape[0] // 10 :, im.shape[1] // 10 : -(im.shape[1] // 10)].copy(),
    "flip": lambda im: np.ascontiguousarray(im[:, ::-1]),
    "brightness": lambda im: np.clip(im.astype(np.float32) * 1.3 + 20, 0, 255).astype(np.uint8),
    "jpeg_q40": lambda im: _jpeg(im, 40),
    "downscale_0.6": lambda im: _resize(im, 0.6),
}


def _center_in(box, face) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return face[0] <= cx <= face[2] and face[1] <= cy <= face[3]


def test_models_are_dlib_with_128_d_descriptors(models):
    assert (models.detector_name, models.embedder_name, models.embedding_dim) == (
        "dlib_hog", "dlib_resnet_v1", 128
    )  # fmt: skip
    assert not models.fallback_reason
    assert len(models.identity) == 16 and models.identity == load_face_models(SETTINGS).identity


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_one_face_with_box_landmarks_and_embedding(found, name):
    (face,) = found[name]
    x0, y0, x1, y1 = face.box
    fx0, fy0, fx1, fy1 = FACE[name]
    # the box is the face: overlaps the hand-drawn one by most of both
    inter = max(0, min(x1, fx1) - max(x0, fx0)) * max(0, min(y1, fy1) - max(y0, fy0))
    union = face.area + (fx1 - fx0) * (fy1 - fy0) - inter
    assert inter / union > 0.7, (face.box, FACE[name])
    assert face.score > 1.0
    assert len(face.landmarks) == 10  # 5 points
    xs, ys = face.landmarks[0::2], face.landmarks[1::2]
    assert all(x0 <= x < x1 for x in xs) and all(y0 <= y < y1 for y in ys)
    assert face.embedding is not None and face.embedding.shape == (128,)
    assert face.embedding.dtype == np.float32 and np.isfinite(face.embedding).all()
    assert face.blur > 0


def test_two_people_are_far_apart(found):
    a, g = found["astronaut"][0].embedding, found["grace_hopper"][0].embedding
    assert float(np.linalg.norm(a - g)) > 0.6


@pytest.mark.parametrize("augmentation", sorted(AUGMENTATIONS))
@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_augmented_views_of_one_person_stay_close(models, found, name, augmentation):
    view = AUGMENTATIONS[augmentation](PHOTOS[name]())
    faces = find_faces(view, models, SETTINGS)
    assert faces, f"no face in {name} after {augmentation}"
    same = found[name][0].embedding
    other = found["grace_hopper" if name == "astronaut" else "astronaut"][0].embedding
    distance = float(np.linalg.norm(faces[0].embedding - same))
    assert distance < 0.6, distance
    assert float(np.linalg.norm(faces[0].embedding - other)) > distance


def test_no_face_gives_an_empty_list(models):
    from skimage import data

    assert find_faces(np.ascontiguousarray(data.coffee()), models, SETTINGS) == []


def test_faces_shorter_than_min_face_px_are_not_embedded(models):
    (face,) = find_faces(_astronaut(), models, SETTINGS.model_copy(update={"min_face_px": 120}))
    assert face.short_side < 120 and face.embedding is None and len(face.landmarks) == 10
    # a genuinely small face: the astronaut at 0.45x (a ~40 px face), found with upsampling
    small = _resize(_astronaut(), 0.45)
    settings = SETTINGS.model_copy(update={"upsample": 2, "min_face_px": 48})
    faces = find_faces(small, models, settings)
    assert faces and faces[0].short_side < 48 and faces[0].embedding is None


def test_min_detector_score_drops_the_mission_patch(models):
    loose = find_faces(_astronaut(), models, SETTINGS.model_copy(update={"min_detector_score": 0}))
    assert len(loose) == 2  # the face (1.16) and the patch on her suit (0.12)
    patch, face = sorted(f.score for f in loose)
    assert 0 < patch < 0.3 < 1.0 < face
    assert len(find_faces(_astronaut(), models, SETTINGS)) == 1


def test_large_images_are_scanned_downscaled_and_answered_in_their_pixels(models, found):
    big = _resize(_astronaut(), 2.0)  # 1024 x 1024
    settings = SETTINGS.model_copy(update={"max_edge": 512})
    (face,) = find_faces(big, models, settings)
    (ref,) = found["astronaut"]
    assert all(abs(a - 2 * b) <= 16 for a, b in zip(face.box, ref.box, strict=True))
    assert all(abs(a - 2 * b) <= 16 for a, b in zip(face.landmarks, ref.landmarks, strict=True))
    assert float(np.linalg.norm(face.embedding - ref.embedding)) < 0.3


def test_faces_are_sorted_largest_first(models):
    a, g = _astronaut(), _grace()  # grace's face is twice as large
    canvas = np.zeros((600, 1024, 3), np.uint8)
    canvas[:512, :512], canvas[:600, 512:] = a, g
    faces = find_faces(canvas, models, SETTINGS)
    assert len(faces) == 2 and faces[0].area > faces[1].area
    assert faces[0].box[0] >= 512  # grace on the right


def test_rejects_non_rgb_input(models):
    with pytest.raises(ValueError, match="uint8 RGB"):
        find_faces(np.zeros((10, 10), np.uint8), models, SETTINGS)


def test_laplacian_variance_is_zero_on_flat_and_empty_crops():
    flat = np.full((50, 50, 3), 128, np.uint8)
    assert laplacian_variance(flat, (0, 0, 50, 50)) == 0.0
    assert laplacian_variance(flat, (10, 10, 10, 20)) == 0.0


def test_cnn_detector_finds_the_same_face(found):
    """dlib's mmod CNN detector (seconds per frame on a CPU: scanned small here)."""
    settings = SETTINGS.model_copy(update={"detector": "dlib_cnn", "max_edge": 320, "upsample": 0})
    models = load_face_models(settings)
    assert models.detector_name == "dlib_cnn" and len(models.files) == 3
    (face,) = find_faces(_grace(), models, settings)
    assert _center_in(face.box, FACE["grace_hopper"]) and face.score > 0
    ref = found["grace_hopper"][0].embedding
    assert float(np.linalg.norm(face.embedding - ref)) < 0.3


# The OpenCV fallback ---------------------------------------------------------------------


def test_opencv_detector_finds_boxes_without_embeddings():
    settings = SETTINGS.model_copy(update={"detector": "opencv"})
    models = load_face_models(settings)
    assert (models.detector_name, models.embedder_name, models.embedding_dim) == (
        "opencv_haar", None, 0
    )  # fmt: skip
    for name, photo in PHOTOS.items():
        faces = find_faces(photo(), models, settings)
        assert faces and _center_in(faces[0].box, FACE[name]), name
        assert faces[0].embedding is None and faces[0].landmarks == ()


def test_auto_falls_back_to_opencv_without_dlib(monkeypatch, caplog):
    monkeypatch.setattr(face_models, "dlib_installed", lambda: False)
    with caplog.at_level(logging.WARNING):
        models = load_face_models(SETTINGS)
    assert models.detector_name == "opencv_haar" and "dlib not installed" in models.fallback_reason
    assert "OpenCV" in caplog.text
    with pytest.raises(FaceModelsUnavailable, match="dlib-bin"):
        load_face_models(SETTINGS.model_copy(update={"detector": "dlib_hog"}))


def test_missing_weight_files_are_named(tmp_path):
    (tmp_path / face_models.SHAPE_PREDICTOR_FILE).write_bytes(b"")
    with pytest.raises(FaceModelsUnavailable, match=face_models.ENCODER_FILE):
        load_face_models(SETTINGS, weights=tmp_path)


def test_missing_yunet_model_is_named(tmp_path):
    from style_pipeline.contracts.curation import FaceConfig

    settings = SETTINGS.model_copy(update={"detector": "opencv"})
    with pytest.raises(FaceModelsUnavailable, match="YuNet model not found"):
        load_face_models(settings, FaceConfig(yunet_model=str(tmp_path / "none.onnx")))


# Many files ---------------------------------------------------------------------------------


def test_faces_in_files_threads_match_inline_and_errors_are_values(tmp_path, found):
    paths = []
    for name, photo in PHOTOS.items():
        path = tmp_path / f"{name}.png"
        Image.fromarray(photo()).save(path)
        paths.append(str(path))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    paths.append(str(tmp_path / "broken.jpg"))
    inline = list(faces_in_files(paths, SETTINGS, workers=1))
    threaded = list(faces_in_files(paths, SETTINGS, workers=2, threads=True, total=len(paths)))
    for got in (inline, threaded):
        assert isinstance(got[2], ItemError)
        for faces, name in zip(got[:2], PHOTOS, strict=True):
            assert [f.box for f in faces] == [f.box for f in found[name]]
            np.testing.assert_array_equal(faces[0].embedding, found[name][0].embedding)


# The cache ------------------------------------------------------------------------------------

SHA = "ab" * 32


def test_cache_round_trips_faces_exactly(tmp_path, models, found):
    cache = FaceCache(Store(tmp_path), models, SETTINGS)
    faces = found["astronaut"] + found["grace_hopper"]
    small = DetectedFace((1, 2, 3, 4), 0.5, (), 1.5, None)
    cache.put(SHA, [*faces, small])
    assert cache.get("cd" * 32) is None
    back = cache.get(SHA)
    assert back is not None and len(back) == 3
    for a, b in zip(back, [*faces, small], strict=True):
        assert (a.box, a.score, a.landmarks, a.blur) == (b.box, b.score, b.landmarks, b.blur)
        if b.embedding is None:
            assert a.embedding is None
        else:
            assert a.embedding.dtype == np.float32
            np.testing.assert_array_equal(a.embedding, b.embedding)
    cache.put("cd" * 32, [])
    assert cache.get("cd" * 32) == []
    key = layout.face_cache_key(SETTINGS.cache_dir, cache.fingerprint, SHA)
    assert cache.key(SHA) == key and key.startswith("characters/cache/faces/")
    assert json.loads(Store(tmp_path).read_bytes(key))["format"] == 1


@pytest.mark.parametrize(
    "payload", [b"{", b'{"format": 1, "faces": [{"box": [1, 2]}]}', b'{"format": 99}']
)
def test_unreadable_cache_entries_are_logged_misses(tmp_path, models, payload, caplog):
    store = Store(tmp_path)
    cache = FaceCache(store, models, SETTINGS)
    store.put_bytes(payload, cache.key(SHA))
    with caplog.at_level(logging.WARNING):
        assert cache.get(SHA) is None
    assert cache.unreadable == [cache.key(SHA)] and "unreadable" in caplog.text


def test_fingerprint_follows_the_settings_that_shape_faces(models):
    base = cache_fingerprint(models, SETTINGS)
    for change in ({"upsample": 0}, {"min_detector_score": 0.5}, {"min_face_px": 60},
                   {"max_edge": 640}):  # fmt: skip
        assert cache_fingerprint(models, SETTINGS.model_copy(update=change)) != base, change
    for change in ({"match_threshold": 0.5}, {"workers": 1}, {"min_cluster_size": 5}):
        assert cache_fingerprint(models, SETTINGS.model_copy(update=change)) == base, change


@pytest.mark.parametrize(
    ("fingerprint", "sha"),
    [("xyz", SHA), ("0123456789abcdef", "12"), ("0123456789abcdef", "A" * 64)],
)
def test_face_cache_key_rejects_bad_parts(fingerprint, sha):
    with pytest.raises(ValueError):
        layout.face_cache_key("characters/cache", fingerprint, sha)
