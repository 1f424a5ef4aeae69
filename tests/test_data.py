"""Tests of spherefer.data: tiny fixtures in each official layout, plus checks on the real datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures import FERPLUS_TRAIN_ROWS, make_fer2013_folder, make_ferplus, write_csv, write_image
from PIL import Image
from realdata import realdata_path

from spherefer.data import (
    COMPOUND_EXPRESSIONS,
    DATASET_FORMATS,
    EXPRESSIONS,
    FER2013CSV,
    RAFDB,
    AffectNet,
    CKPlus,
    CKPlus48,
    ExpW,
    FER2013Folder,
    FERPlus,
    ImageFolder,
    canonical_name,
    compound_pair,
    compound_sets,
    data_spec_stem,
    given_split,
    is_unknown_face,
    majority_emotion,
    open_dataset,
    parse_data_spec,
    read_fer2013new,
    subject_kfold,
    subject_split,
)

# ---------------------------------------------------------------- fixture builders (write_image and
# make_fer2013_folder, shared with other test modules, live in fixtures.py)


def pixels_text(value: int, count: int = 48 * 48) -> str:
    """A fer2013.csv ``pixels`` field of ``count`` copies of ``value``."""
    return " ".join([str(value)] * count)


def make_fer2013_csv(path: Path, extra_rows: list[list[object]] = ()) -> Path:
    """fer2013.csv with 3 Training, 1 PublicTest and 1 PrivateTest rows, then ``extra_rows``."""
    rows = [
        ["emotion", "pixels", "Usage"],
        [0, pixels_text(0), "Training"],
        [3, pixels_text(255), "Training"],
        [6, pixels_text(7), "Training"],
        [4, pixels_text(1), "PublicTest"],
        [5, pixels_text(2), "PrivateTest"],
        *extra_rows,
    ]
    return write_csv(path, rows)


CKPLUS48_FILES = {
    "anger": ["S010_004_00000017.png", "S010_004_00000018.png"],
    "happy": ["S011_002_00000009.png", "S012_001_00000003.png"],
    "contempt": ["S013_001_00000005.png"],
    "surprise": ["S014_001_00000021.png"],
}


def make_ckplus48(root: Path) -> Path:
    """``root/CK+48/<class>/S*_*_*.png`` from CKPLUS48_FILES."""
    for class_name, names in CKPLUS48_FILES.items():
        for name in names:
            write_image(root / "CK+48" / class_name / name)
    return root


def make_ckplus(root: Path) -> Path:
    """Official CK+: S005/001 (5 frames, disgust), S010/002 (4 frames, happy), S010/003 (3 frames, unlabelled)."""
    sequences = {
        ("S005", "001"): (5, "   3.0000000e+00\n"),
        ("S010", "002"): (4, "   5.0000000e+00\n"),
        ("S010", "003"): (3, None),
    }
    for (subject, sequence), (frame_count, emotion_text) in sequences.items():
        for frame in range(1, frame_count + 1):
            write_image(
                root / "cohn-kanade-images" / subject / sequence / f"{subject}_{sequence}_{frame:08d}.png", value=frame
            )
        if emotion_text is not None:
            emotion_file = root / "Emotion" / subject / sequence / f"{subject}_{sequence}_{frame_count:08d}_emotion.txt"
            emotion_file.parent.mkdir(parents=True, exist_ok=True)
            emotion_file.write_text(emotion_text)
    return root


def make_rafdb(root: Path, labels: dict[str, int]) -> Path:
    """RAF-DB layout with ``labels`` (image name -> label) and 100x100 aligned images."""
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text(
        "".join(f"{name} {label}\n" for name, label in labels.items())
    )
    for name in labels:
        write_image(root / "Image" / "aligned" / f"{Path(name).stem}_aligned.jpg", size=(100, 100))
    return root


RAFDB_BASIC_LABELS = {"train_00001.jpg": 5, "train_00002.jpg": 1, "train_00003.jpg": 7, "test_0001.jpg": 4}


def make_expw(root: Path, lines: list[str]) -> Path:
    """ExpW layout with label.lst ``lines`` and one 120x90 original image ``a.jpg`` (left half dark, right half
    light)."""
    image = Image.new("L", (120, 90), 0)
    image.paste(255, (60, 0, 120, 90))
    (root / "image" / "origin").mkdir(parents=True)
    image.save(root / "image" / "origin" / "a.jpg")
    (root / "label").mkdir()
    (root / "label" / "label.lst").write_text("".join(line + "\n" for line in lines))
    return root


AFFECTNET_HEADER = [
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
]


def affectnet_row(file: str, expression: int, box: tuple[int, int, int, int] = (10, 20, 30, 40)) -> list[object]:
    """One AffectNet CSV row."""
    return [file, *box, "1.0;2.0;3.0;4.0", expression, 0.5, -0.25]


def make_affectnet(root: Path, header: bool = True) -> Path:
    """AffectNet root with Manually_Annotated_Images/1/{a,b,c}.jpg and a training.csv listing them."""
    for name in ("a", "b", "c"):
        write_image(root / "Manually_Annotated_Images" / "1" / f"{name}.jpg", size=(64, 80))
    rows = [affectnet_row("1/a.jpg", 1), affectnet_row("1/b.jpg", 7), affectnet_row("1/c.jpg", 9)]
    write_csv(root / "Manually_Annotated_file_lists" / "training.csv", [AFFECTNET_HEADER, *rows] if header else rows)
    return root


# ---------------------------------------------------------------- vocabulary


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("anger", "angry"),
        ("Sadness", "sad"),
        ("HAPPINESS", "happy"),
        ("surprised", "surprise"),
        ("fearful", "fear"),
        ("disgusted", "disgust"),
        ("neutrality", "neutral"),
        ("contempt", "contempt"),
        (" Happily Surprised ", "happily_surprised"),
    ],
)
def test_canonical_name_maps_dataset_spellings(spelling: str, canonical: str) -> None:
    assert canonical_name(spelling) == canonical


def test_canonical_name_rejects_unknown_name_listing_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown expression name 'bored'.*happiness"):
        canonical_name("bored")


def test_vocabulary_order() -> None:
    assert EXPRESSIONS[:7] == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert len(COMPOUND_EXPRESSIONS) == 11 and COMPOUND_EXPRESSIONS[0] == "happily_surprised"


# ---------------------------------------------------------------- FER2013 (and the shared base behaviour)


def test_fer2013_folder_splits_and_ids(tmp_path: Path) -> None:
    root = make_fer2013_folder(tmp_path)
    train = FER2013Folder(root, "train")
    assert train.classes == list(EXPRESSIONS[:7])
    assert len(train) == 3 and train.targets == [0, 0, 3]
    assert train.ids == ["train/angry/Training_1.jpg", "train/angry/Training_2.jpg", "train/happy/Training_1.jpg"]
    assert train.class_counts() == {
        "angry": 2,
        "disgust": 0,
        "fear": 0,
        "happy": 1,
        "sad": 0,
        "surprise": 0,
        "neutral": 0,
    }
    assert [path.name for path in FER2013Folder(root, "publictest").paths] == ["PublicTest_3.jpg"]
    assert FER2013Folder(root, "privatetest").targets == [6, 4]


def test_dataset_item_mode_and_transform(tmp_path: Path) -> None:
    root = make_fer2013_folder(tmp_path)
    image, target = FER2013Folder(root)[2]
    assert (image.mode, image.size, target) == ("L", (48, 48), 3)
    image, _ = FER2013Folder(root, mode="RGB")[0]
    assert image.mode == "RGB"
    array, _ = FER2013Folder(root, transform=np.asarray)[0]
    assert isinstance(array, np.ndarray) and array.shape == (48, 48)
    with pytest.raises(ValueError, match="unknown image mode 'CMYK'; valid: L, RGB"):
        FER2013Folder(root, mode="CMYK")


def test_classes_argument_restricts_and_reorders(tmp_path: Path) -> None:
    root = make_fer2013_folder(tmp_path)
    dataset = FER2013Folder(root, classes=["happiness", "angry"])
    assert dataset.classes == ["happy", "angry"]
    assert dataset.targets == [1, 1, 0]
    assert len(FER2013Folder(root, classes=["happy"])) == 1
    with pytest.raises(ValueError, match="class 'contempt' is not in FER2013Folder; available: angry"):
        FER2013Folder(root, classes=["contempt"])
    with pytest.raises(ValueError, match="class 'bored' is not in FER2013Folder"):
        FER2013Folder(root, classes=["bored"])
    with pytest.raises(ValueError, match="requested twice"):
        FER2013Folder(root, classes=["anger", "angry"])


def test_load_arrays_shapes_dtypes_and_values(tmp_path: Path) -> None:
    images, targets = FER2013Folder(make_fer2013_folder(tmp_path)).load_arrays()
    assert images.shape == (3, 48, 48) and images.dtype == np.uint8
    assert targets.dtype == np.int64 and targets.tolist() == [0, 0, 3]
    assert abs(int(images[1].mean()) - 20) <= 2  # JPEG of a uniform value 20


def test_fer2013_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"(?s)folder not found: .*missing/train.*expected layout.*Training_<id>\.jpg"
    ):
        FER2013Folder(tmp_path / "missing")
    root = make_fer2013_folder(tmp_path / "fer")
    with pytest.raises(ValueError, match="unknown FER2013 split 'val'; valid: train, publictest, privatetest"):
        FER2013Folder(root, "val")
    write_image(root / "test" / "contempt" / "PublicTest_9.jpg")
    with pytest.raises(ValueError, match=r"(?s)class folder .*test/contempt is not one of angry, .*expected layout"):
        FER2013Folder(root, "publictest")


def test_fer2013_csv_splits_and_pixels(tmp_path: Path) -> None:
    path = make_fer2013_csv(tmp_path / "fer2013.csv")
    train = FER2013CSV(path, "train")
    assert train.targets == [0, 3, 6] and train.rows == [0, 1, 2]
    assert train.ids == ["fer2013.csv:0", "fer2013.csv:1", "fer2013.csv:2"]
    images, _ = train.load_arrays()
    assert images[:, 0, 0].tolist() == [0, 255, 7]
    assert FER2013CSV(path, "publictest").targets == [4]
    private = FER2013CSV(path, "privatetest")
    assert private.rows == [4] and private[0][0].getpixel((5, 5)) == 2


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ([3, pixels_text(1, 2303), "Training"], "line 7: 2303 pixel values, expected 2304"),
        (["x", pixels_text(1), "Training"], "line 7: emotion 'x' is not an integer"),
        ([7, pixels_text(1), "Training"], r"line 7: emotion 7 is outside 0\.\.6"),
        ([1, pixels_text(300), "Training"], "line 7: pixel values outside 0..255"),
        ([1, pixels_text(1), "Validation"], "line 7: unknown Usage 'Validation'"),
        ([1, pixels_text(1), "Training", "extra"], "line 7: more fields than the header's 3"),
    ],
)
def test_fer2013_csv_malformed_row_names_file_and_line(tmp_path: Path, bad_row: list[object], message: str) -> None:
    path = make_fer2013_csv(tmp_path / "fer2013.csv", [bad_row])
    with pytest.raises(ValueError, match=f"fer2013.csv, {message}"):
        FER2013CSV(path, "train")


def test_fer2013_csv_missing_file_and_bad_header(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"(?s)file not found: .*nope\.csv.*emotion,pixels,Usage"):
        FER2013CSV(tmp_path / "nope.csv")
    path = write_csv(tmp_path / "bad.csv", [["label", "pixels", "Usage"]])
    with pytest.raises(ValueError, match="header lacks column\\(s\\) emotion"):
        FER2013CSV(path)


# ---------------------------------------------------------------- FER+


def test_majority_emotion_rules() -> None:
    for _, votes, expected in FERPLUS_TRAIN_ROWS:
        assert majority_emotion(votes) == expected


def test_ferplus_majority_drops_ties_unknown_and_nf(tmp_path: Path) -> None:
    dataset = FERPlus(make_ferplus(tmp_path), "train")
    assert dataset.classes == list(EXPRESSIONS)
    kept = [(name, label) for name, _, label in FERPLUS_TRAIN_ROWS if label is not None]
    assert [path.name for path in dataset.paths] == [name for name, _ in kept]
    assert [dataset.classes[target] for target in dataset.targets] == [label for _, label in kept]
    assert dataset.raw_votes.shape == (4, 10) and dataset.raw_votes.dtype == np.int64
    assert dataset.raw_votes[1].tolist() == [0, 8, 2, 0, 0, 0, 0, 0, 0, 0]


def test_ferplus_votes_are_distributions_over_classes(tmp_path: Path) -> None:
    dataset = FERPlus(make_ferplus(tmp_path), "train", target="votes")
    assert dataset.votes.shape == (4, 8) and dataset.votes.dtype == np.float32
    np.testing.assert_allclose(dataset.votes.sum(axis=1), 1.0, rtol=1e-6)
    fear_row = dataset.votes[3]  # 3 surprise, 5 fear, 2 unknown -> unknown removed
    assert fear_row[dataset.classes.index("fear")] == pytest.approx(5 / 8)
    assert fear_row[dataset.classes.index("surprise")] == pytest.approx(3 / 8)
    image, target = dataset[3]
    assert image.size == (48, 48) and np.array_equal(target, fear_row)


def test_ferplus_without_contempt_and_class_subset(tmp_path: Path) -> None:
    root = make_ferplus(tmp_path)
    without = FERPlus(root, "train", include_contempt=False)
    assert "contempt" not in without.classes and len(without) == 3 and without.votes.shape == (3, 7)
    subset = FERPlus(root, "train", classes=["happy", "neutral"])
    assert subset.classes == ["happy", "neutral"] and subset.targets == [1, 0]
    np.testing.assert_array_equal(subset.votes, [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="class 'contempt' is not in FERPlus"):
        FERPlus(root, "train", include_contempt=False, classes=["contempt"])


def test_ferplus_other_splits_raw_table_and_errors(tmp_path: Path) -> None:
    root = make_ferplus(tmp_path)
    assert FERPlus(root, "valid").class_counts()["angry"] == 1
    assert FERPlus(root, "test").class_counts()["sad"] == 1
    table = FERPlus.raw_table(root, "train")
    assert [row.name for row in table] == [name for name, _, _ in FERPLUS_TRAIN_ROWS]
    assert table[5].votes[-1] == 10
    with pytest.raises(ValueError, match="unknown FER\\+ split 'val'; valid: train, valid, test"):
        FERPlus(root, "val")
    with pytest.raises(ValueError, match="unknown FER\\+ target 'soft'"):
        FERPlus(root, "train", target="soft")
    with pytest.raises(FileNotFoundError, match=r"(?s)missing/data/FER2013Train.*label\.csv rows"):
        FERPlus(tmp_path / "missing")


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("fer9.png,box,1,2,3", "line 2: 3 vote columns, expected 10"),
        ("fer9.png,box,1,2,3,4,x,0,0,0,0,0", "line 2: vote counts .* are not all integers"),
        ("fer9.png,box,0,0,0,0,0,0,0,0,0,0", "line 2: vote counts .* at least one vote"),
    ],
)
def test_ferplus_malformed_label_row_names_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    root = make_ferplus(tmp_path)
    label_csv = root / "data" / "FER2013Valid" / "label.csv"
    label_csv.write_text(label_csv.read_text() + bad_line + "\n")
    with pytest.raises(ValueError, match=f"label.csv, {message}"):
        FERPlus(root, "valid")


def test_read_fer2013new(tmp_path: Path) -> None:
    rows = read_fer2013new(make_ferplus(tmp_path) / "fer2013new.csv")
    assert [(row.row, row.usage, row.name) for row in rows] == [
        (0, "Training", "fer0000000.png"),
        (1, "Training", ""),
        (2, "PrivateTest", "fer0000001.png"),
    ]
    assert rows[1].votes == (0,) * 9 + (10,)
    bad = write_csv(tmp_path / "bad.csv", [["Usage", "Image"], ["Training", "a.png", 1]])
    with pytest.raises(ValueError, match="bad.csv, line 1: header"):
        read_fer2013new(bad)


# ---------------------------------------------------------------- FER+ vote rules: compounds and unknown faces


def votes(**counts: int) -> list[int]:
    """10 FER+ vote counts from column names (neutral, happiness, ..., unknown, NF)."""
    columns = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]
    assert set(counts) <= set(columns)
    return [counts.get(column, 0) for column in columns]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (votes(happiness=5, surprise=4, neutral=1), ("happy", "surprise")),
        (votes(sadness=4, anger=4, neutral=2), ("angry", "sad")),  # tied top two: a pair, in EXPRESSIONS order
        (votes(fear=5, surprise=3, disgust=2), ("fear", "surprise")),
        (votes(neutral=4, fear=3, surprise=3), ("fear", "surprise")),  # neutral votes do not compete
        (votes(happiness=4, surprise=3, fear=3), None),  # third not strictly below the second
        (votes(happiness=3, surprise=3, fear=3, neutral=1), None),  # three-way tie
        (votes(happiness=7, surprise=2, neutral=1), None),  # second below 3 votes
        (votes(contempt=3, happiness=3, surprise=2, unknown=2), None),  # contempt is not one of the six
    ],
)
def test_compound_pair(row: list[int], expected: tuple[str, str] | None) -> None:
    assert compound_pair(row) == expected


def test_compound_pair_needs_ten_votes() -> None:
    with pytest.raises(ValueError, match="expected 10 FER\\+ vote counts"):
        compound_pair([3, 3, 4])


def test_compound_sets_keep_frequent_pairs_most_frequent_first() -> None:
    rows = (
        [votes(happiness=5, surprise=5)] * 3
        + [votes(fear=4, surprise=6)] * 4
        + [votes(anger=5, sadness=5)]
        + [votes(happiness=10)]
    )
    sets = compound_sets(rows, min_faces=3)
    assert list(sets) == ["fear+surprise", "happy+surprise"]
    np.testing.assert_array_equal(sets["fear+surprise"], [3, 4, 5, 6])
    np.testing.assert_array_equal(sets["happy+surprise"], [0, 1, 2])


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (votes(unknown=3, NF=2, happiness=4, neutral=1), True),  # pooled 5 beats 4
        (votes(unknown=4, happiness=4, surprise=2), False),  # pooled ties the top emotion
        (votes(NF=6, neutral=4), True),
        (votes(unknown=2, happiness=5, surprise=3), False),
    ],
)
def test_is_unknown_face(row: list[int], expected: bool) -> None:
    assert is_unknown_face(row) is expected


# ---------------------------------------------------------------- CK+


def test_ckplus48_classes_counts_and_subjects(tmp_path: Path) -> None:
    dataset = CKPlus48(make_ckplus48(tmp_path))
    assert dataset.classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"]
    assert dataset.class_counts() == {
        "angry": 2,
        "disgust": 0,
        "fear": 0,
        "happy": 2,
        "sad": 0,
        "surprise": 1,
        "contempt": 1,
    }
    assert dataset.subjects == ["S010", "S010", "S013", "S011", "S012", "S014"]
    assert len(CKPlus48(tmp_path / "CK+48")) == 6  # the CK+48 folder itself also works


def test_ckplus48_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"(?s)nothing/CK\+48.*<class>/S<subject>"):
        CKPlus48(tmp_path / "nothing")
    root = make_ckplus48(tmp_path)
    write_image(root / "CK+48" / "fear" / "frame1.png")
    with pytest.raises(ValueError, match=r"frame1\.png: file name is not S<subject>_<sequence>_<frame>\.png"):
        CKPlus48(root)
    write_image(root / "CK+48" / "Bored" / "S001_001_00000001.png")
    with pytest.raises(ValueError, match=r"class folder .*CK\+48/Bored is not one of angry"):
        CKPlus48(root)


def test_ckplus_last_frames_and_neutral(tmp_path: Path) -> None:
    root = make_ckplus(tmp_path)
    dataset = CKPlus(root)
    assert dataset.classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"]
    assert [path.name for path in dataset.paths] == [f"S005_001_{i:08d}.png" for i in (3, 4, 5)] + [
        f"S010_002_{i:08d}.png" for i in (2, 3, 4)
    ]
    assert [dataset.classes[target] for target in dataset.targets] == ["disgust"] * 3 + ["happy"] * 3
    assert dataset.subjects == ["S005"] * 3 + ["S010"] * 3
    with_neutral = CKPlus(root, last_n=1, include_neutral=True)
    assert "neutral" in with_neutral.classes
    assert [path.name for path in with_neutral.paths] == [
        "S005_001_00000005.png",
        "S005_001_00000001.png",
        "S010_002_00000004.png",
        "S010_002_00000001.png",
    ]
    assert with_neutral.class_counts()["neutral"] == 2
    assert (
        len(CKPlus(root, last_n=4, include_neutral=True)) == 4 + 1 + 4
    )  # S010/002's first frame is already a peak frame


@pytest.mark.parametrize(
    ("text", "message"),
    [("   9.0000000e+00", "emotion code 9.0000000e\\+00 is not one of 1..7"), ("three", "expected one number")],
)
def test_ckplus_bad_emotion_file(tmp_path: Path, text: str, message: str) -> None:
    root = make_ckplus(tmp_path)
    (root / "Emotion" / "S005" / "001" / "S005_001_00000005_emotion.txt").write_text(text)
    with pytest.raises(ValueError, match=f"S005_001_00000005_emotion.txt: {message}"):
        CKPlus(root)


def test_ckplus_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"(?s)Emotion.*cohn-kanade-images/S###"):
        CKPlus(tmp_path)
    with pytest.raises(ValueError, match="last_n must be at least 1"):
        CKPlus(make_ckplus(tmp_path), last_n=0)


# ---------------------------------------------------------------- subject splits


SUBJECTS = ["S1", "S1", "S2", "S3", "S3", "S3", "S4", "S5", "S6", "S6"]


def test_subject_split_is_disjoint_and_deterministic() -> None:
    train, test = subject_split(SUBJECTS, test_fraction=0.34, seed=3)
    assert sorted([*train, *test]) == list(range(len(SUBJECTS)))
    assert not {SUBJECTS[i] for i in train} & {SUBJECTS[i] for i in test}
    assert len({SUBJECTS[i] for i in test}) == 2
    again = subject_split(SUBJECTS, test_fraction=0.34, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    with pytest.raises(ValueError, match="test_fraction must be strictly between 0 and 1"):
        subject_split(SUBJECTS, 1.0)
    with pytest.raises(ValueError, match="need at least 2 distinct subjects"):
        subject_split(["S1", "S1"], 0.5)


def test_subject_kfold_puts_each_subject_in_one_test_fold() -> None:
    folds = subject_kfold(SUBJECTS, k=3, seed=0)
    assert len(folds) == 3
    assert sorted(i for _, test in folds for i in test) == list(range(len(SUBJECTS)))
    for train, test in folds:
        assert not {SUBJECTS[i] for i in train} & {SUBJECTS[i] for i in test}
        assert len(train) + len(test) == len(SUBJECTS)
    with pytest.raises(ValueError, match="need at least 7 distinct subjects, got 6"):
        subject_kfold(SUBJECTS, k=7)


# ---------------------------------------------------------------- RAF-DB, ExpW, AffectNet, ImageFolder


def test_rafdb_basic(tmp_path: Path) -> None:
    root = make_rafdb(tmp_path, RAFDB_BASIC_LABELS)
    train = RAFDB(root, "train")
    assert train.classes == list(EXPRESSIONS[:7])
    assert [train.classes[target] for target in train.targets] == ["sad", "surprise", "neutral"]
    assert train.ids[0] == "Image/aligned/train_00001_aligned.jpg"
    images, _ = train.load_arrays()
    assert images.shape == (3, 48, 48)  # 100x100 resized
    assert train[0][0].size == (100, 100)
    assert RAFDB(root, "test").class_counts()["happy"] == 1


def test_rafdb_compound_and_errors(tmp_path: Path) -> None:
    root = make_rafdb(tmp_path / "compound", {"train_0001.jpg": 1, "test_0001.jpg": 11})
    test = RAFDB(root, "test", subset="compound")
    assert test.classes == list(COMPOUND_EXPRESSIONS)
    assert test.classes[test.targets[0]] == "disgustedly_surprised"
    with pytest.raises(ValueError, match="label 11 is outside 1..7 for the basic subset"):
        RAFDB(root, "test")
    with pytest.raises(ValueError, match="unknown RAF-DB subset 'mixed'"):
        RAFDB(root, "test", subset="mixed")
    (root / "EmoLabel" / "list_patition_label.txt").write_text("train_0001.jpg 1\ntrain_0002.jpg\n")
    with pytest.raises(ValueError, match=r"list_patition_label.txt, line 2: expected 2 fields \(image_name label\)"):
        RAFDB(root, "train", subset="compound")
    with pytest.raises(FileNotFoundError, match="EmoLabel/list_patition_label.txt"):
        RAFDB(tmp_path / "nothing")


def test_expw_crops_face_boxes(tmp_path: Path) -> None:
    root = make_expw(tmp_path, ["a.jpg 0 10 70 110 50 0.9 3", "a.jpg 1 0 0 40 30 0.8 6"])
    dataset = ExpW(root)
    assert [dataset.classes[target] for target in dataset.targets] == ["happy", "neutral"]
    bright, _ = dataset[0]
    dark, _ = dataset[1]
    assert bright.size == (40, 40) and np.asarray(bright).min() > 200
    assert dark.size == (40, 30) and np.asarray(dark).max() < 50
    assert dataset.ids == ["image/origin/a.jpg#70,10,110,50", "image/origin/a.jpg#0,0,40,30"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a.jpg 0 10 70 110", "expected 8 fields"),
        ("a.jpg 0 10 70 110 50 0.9 7", "expression_label 7 is outside 0..6"),
        ("a.jpg 0 10 70 60 50 0.9 1", "face box .* is empty"),
        ("a.jpg 0 top 70 110 50 0.9 1", "top 'top' is not an integer"),
    ],
)
def test_expw_malformed_line(tmp_path: Path, line: str, message: str) -> None:
    root = make_expw(tmp_path, ["a.jpg 0 10 70 110 50 0.9 3", line])
    with pytest.raises(ValueError, match=f"label.lst, line 2: {message}"):
        ExpW(root)


@pytest.mark.parametrize("header", [True, False])
def test_affectnet_reads_with_or_without_header(tmp_path: Path, header: bool) -> None:
    root = make_affectnet(tmp_path, header=header)
    dataset = AffectNet(root / "Manually_Annotated_file_lists" / "training.csv", root / "Manually_Annotated_Images")
    assert dataset.classes == list(EXPRESSIONS)
    assert [dataset.classes[target] for target in dataset.targets] == ["happy", "contempt"]  # code 9 dropped
    assert dataset[0][0].size == (30, 40)
    assert dataset.ids[0] == "1/a.jpg#10,20,40,60"


def test_affectnet_errors(tmp_path: Path) -> None:
    root = make_affectnet(tmp_path)
    csv_path = write_csv(tmp_path / "bad.csv", [AFFECTNET_HEADER, affectnet_row("1/a.jpg", 11)])
    with pytest.raises(ValueError, match=r"bad.csv, line 2: expression 11 is outside 0..10"):
        AffectNet(csv_path, root / "Manually_Annotated_Images")
    short = write_csv(tmp_path / "short.csv", [["1/a.jpg", 1, 2]])
    with pytest.raises(ValueError, match="short.csv, line 1: 3 fields, expected 9"):
        AffectNet(short, root / "Manually_Annotated_Images")
    with pytest.raises(FileNotFoundError, match="folder not found: .*nowhere"):
        AffectNet(csv_path, tmp_path / "nowhere")


def test_image_folder_canonicalises_known_names_and_keeps_others(tmp_path: Path) -> None:
    write_image(tmp_path / "Happiness" / "x.PNG")
    write_image(tmp_path / "pain" / "y.jpeg")
    write_image(tmp_path / "pain" / "z.bmp")
    write_image(tmp_path / "anger" / "w.webp")
    (tmp_path / "pain" / "notes.txt").write_text("not an image")
    dataset = ImageFolder(tmp_path)
    assert dataset.classes == ["angry", "happy", "pain"]
    assert dataset.class_counts() == {"angry": 1, "happy": 1, "pain": 2}
    assert ImageFolder(tmp_path, classes=["pain", "Anger"]).classes == ["pain", "angry"]
    write_image(tmp_path / "angry" / "v.jpg")
    with pytest.raises(ValueError, match="both name class 'angry'"):
        ImageFolder(tmp_path)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="folder not found"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(FileNotFoundError, match="no images in"):
        ImageFolder(tmp_path)


# ---------------------------------------------------------------- --data spec


def test_open_dataset_each_format(tmp_path: Path) -> None:
    fer = make_fer2013_folder(tmp_path / "fer")
    assert len(open_dataset(f"fer2013:{fer}")) == 3
    assert len(open_dataset(f"fer2013:{fer}:privatetest")) == 2
    assert isinstance(open_dataset(f"fer2013:{make_fer2013_csv(tmp_path / 'fer2013.csv')}:publictest"), FER2013CSV)
    assert (
        open_dataset(f"ferplus:{make_ferplus(tmp_path / 'ferplus')}:valid", include_contempt=False).classes[-1]
        == "neutral"
    )
    assert len(open_dataset(f"ckplus48:{make_ckplus48(tmp_path / 'ck48')}", classes=["contempt"])) == 1
    assert len(open_dataset(f"ckplus:{make_ckplus(tmp_path / 'ck')}")) == 6
    assert len(open_dataset(f"rafdb:{make_rafdb(tmp_path / 'raf', RAFDB_BASIC_LABELS)}:test")) == 1
    compound = open_dataset(f"rafdb:{make_rafdb(tmp_path / 'rafc', {'test_0001.jpg': 2})}:compound-test")
    assert compound.classes[compound.targets[0]] == "happily_disgusted"
    assert len(open_dataset(f"expw:{make_expw(tmp_path / 'expw', ['a.jpg 0 0 0 40 30 0.8 6'])}")) == 1
    assert len(open_dataset(f"affectnet:{make_affectnet(tmp_path / 'affectnet')}")) == 2
    write_image(tmp_path / "folder" / "pain" / "a.png")
    assert open_dataset(f"folder:{tmp_path / 'folder'}").classes == ["pain"]


def test_data_spec_expands_home_and_defaults_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    make_fer2013_folder(tmp_path / "fer")
    spec = parse_data_spec("fer2013:~/fer")
    assert spec == ("fer2013", tmp_path / "fer", "train")
    assert len(open_dataset("fer2013:~/fer:publictest")) == 1
    assert parse_data_spec("ckplus48:~/ck").split is None
    assert all(fmt.default_split in fmt.splits or not fmt.splits for fmt in DATASET_FORMATS.values())


def test_data_spec_names_its_split_stem_and_canonical_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert given_split("fer2013:~/fer:privatetest") == "privatetest" and given_split("fer2013:~/fer") is None
    assert data_spec_stem("fer2013:~/fer:privatetest") == "fer2013_privatetest"
    assert data_spec_stem("fer2013:~/fer") == "fer2013" and data_spec_stem("folder:/x") == "folder"
    assert parse_data_spec("fer2013:~/fer").canonical == f"fer2013:{tmp_path / 'fer'}:train"
    assert parse_data_spec("ckplus48:/ck").canonical == "ckplus48:/ck"
    for bad in ("imagenet:/x", "fer2013:/x:test", "fer2013"):
        with pytest.raises(ValueError):
            data_spec_stem(bad)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "imagenet:/x",
            "unknown dataset format 'imagenet'; valid: fer2013, ferplus, ckplus48, ckplus, rafdb, expw, affectnet, "
            "folder",
        ),
        ("fer2013:/x:test", "unknown fer2013 split 'test'; valid: train, publictest, privatetest"),
        ("rafdb:/x:val", "unknown rafdb split 'val'; valid: train, test, compound-train, compound-test"),
        ("ckplus48:/x:train", "dataset format 'ckplus48' has no splits"),
        ("fer2013", "is not FORMAT:PATH"),
        ("fer2013::train", "is not FORMAT:PATH"),
        ("folder:C:/x:y:z", "PATH may not contain ':'"),
    ],
)
def test_data_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_data_spec(spec)


def test_open_dataset_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing/data/FER2013Test"):
        open_dataset(f"ferplus:{tmp_path / 'nothing'}:test")


# ---------------------------------------------------------------- real datasets (../shared/datasets)

FER2013_TRAIN_COUNTS = {
    "angry": 3995,
    "disgust": 436,
    "fear": 4097,
    "happy": 7215,
    "sad": 4830,
    "surprise": 3171,
    "neutral": 4965,
}
CKPLUS48_COUNTS = {"angry": 135, "disgust": 177, "fear": 75, "happy": 207, "sad": 84, "surprise": 249, "contempt": 54}


@pytest.mark.realdata
def test_real_fer2013_counts() -> None:
    root = realdata_path("fer2013")
    assert FER2013Folder(root, "train").class_counts() == FER2013_TRAIN_COUNTS
    assert len(FER2013Folder(root, "publictest")) == 3589
    private = FER2013Folder(root, "privatetest")
    assert len(private) == 3589
    images, targets = private.load_arrays()
    assert images.shape == (3589, 48, 48) and targets.shape == (3589,)


@pytest.mark.realdata
def test_real_ckplus48_counts_and_subjects() -> None:
    dataset = CKPlus48(realdata_path("ckplus48"))
    assert len(dataset) == 981
    assert dataset.class_counts() == CKPLUS48_COUNTS
    assert len(set(dataset.subjects)) == 118
    for train, test in subject_kfold(dataset.subjects, k=10, seed=0):
        assert not {dataset.subjects[i] for i in train} & {dataset.subjects[i] for i in test}


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("split", "rows", "majority", "majority_without_contempt"),
    [("train", 28558, 26940, 26775), ("valid", 3579, 3396, 3370), ("test", 3573, 3371, 3344)],
)
def test_real_ferplus_counts(split: str, rows: int, majority: int, majority_without_contempt: int) -> None:
    root = realdata_path("ferplus")
    assert len(FERPlus.raw_table(root, split)) == rows
    assert len(FERPlus(root, split)) == majority
    assert len(FERPlus(root, split, include_contempt=False)) == majority_without_contempt


@pytest.mark.realdata
def test_real_fer2013new_rows() -> None:
    rows = read_fer2013new(realdata_path("ferplus") / "fer2013new.csv")
    assert len(rows) == 35887
    assert sum(1 for row in rows if row.usage == "Training") == 28709


@pytest.mark.realdata
def test_ferplus_compound_pair_counts() -> None:
    root = realdata_path("ferplus")
    rows = [row.votes for split in ("valid", "test") for row in FERPlus.raw_table(root, split)]
    counts = {name: len(members) for name, members in compound_sets(rows).items()}
    assert counts == {
        "fear+surprise": 142,
        "happy+surprise": 109,
        "angry+sad": 56,
        "angry+surprise": 45,
        "angry+disgust": 40,
        "fear+sad": 35,
        "angry+fear": 23,
        "angry+happy": 22,
    }
