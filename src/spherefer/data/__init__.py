"""Expression datasets in their real on-disk layouts, one vocabulary, and subject-disjoint splits.

Every dataset is an :class:`ExpressionDataset`: ``dataset[i]`` is ``(PIL image, target)``,
``classes`` are canonical names from :data:`EXPRESSIONS` (or :data:`COMPOUND_EXPRESSIONS`),
and ``load_arrays()`` gives the whole set as uint8 arrays. :func:`open_dataset` opens one
from a ``FORMAT:PATH[:SPLIT]`` string.
"""

from spherefer.data import ferplus
from spherefer.data.affectnet import AffectNet
from spherefer.data.base import ExpressionDataset, ImageFile, ImageFileDataset
from spherefer.data.ckplus import CKPlus, CKPlus48
from spherefer.data.expw import ExpW
from spherefer.data.fer2013 import FER2013_CLASSES, FER2013CSV, FER2013Folder
from spherefer.data.ferplus import (  # noqa: F401 (re-exported through ferplus.__all__)
    BASIC_EMOTIONS,
    FERPLUS_SPLITS,
    FERPLUS_VOTE_COLUMNS,
    FER2013NewRow,
    FERPlus,
    FERPlusRow,
    compound_name,
    compound_pair,
    compound_sets,
    is_unknown_face,
    majority_emotion,
    read_fer2013new,
)
from spherefer.data.folder import ImageFolder
from spherefer.data.rafdb import RAFDB
from spherefer.data.spec import (
    DATASET_FORMATS,
    DatasetFormat,
    DataSpec,
    data_spec_stem,
    given_split,
    open_dataset,
    parse_data_spec,
)
from spherefer.data.splits import subject_kfold, subject_split
from spherefer.data.vocabulary import COMPOUND_EXPRESSIONS, EXPRESSIONS, canonical_name, is_expression_name

__all__ = [
    "EXPRESSIONS",
    "COMPOUND_EXPRESSIONS",
    "canonical_name",
    "is_expression_name",
    "ExpressionDataset",
    "ImageFile",
    "ImageFileDataset",
    "FER2013_CLASSES",
    "FER2013Folder",
    "FER2013CSV",
    *ferplus.__all__,
    "CKPlus48",
    "CKPlus",
    "RAFDB",
    "ExpW",
    "AffectNet",
    "ImageFolder",
    "DATASET_FORMATS",
    "DatasetFormat",
    "DataSpec",
    "open_dataset",
    "parse_data_spec",
    "given_split",
    "data_spec_stem",
    "subject_split",
    "subject_kfold",
]
