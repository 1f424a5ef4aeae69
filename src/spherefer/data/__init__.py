"""Expression datasets in their real on-disk layouts, one vocabulary, and subject-disjoint splits.

Every dataset is an :class:`ExpressionDataset`: ``dataset[i]`` is ``(PIL image, target)``,
``classes`` are canonical names from :data:`EXPRESSIONS` (or :data:`COMPOUND_EXPRESSIONS`),
and ``load_arrays()`` gives the whole set as uint8 arrays. :func:`open_dataset` opens one
from a ``FORMAT:PATH[:SPLIT]`` string.
"""

from spherefer.data.affectnet import AffectNet
from spherefer.data.base import ExpressionDataset, ImageFile, ImageFileDataset
from spherefer.data.ckplus import CKPlus, CKPlus48
from spherefer.data.expw import ExpW
from spherefer.data.fer2013 import FER2013_CLASSES, FER2013CSV, FER2013Folder
from spherefer.data.ferplus import (
    BASIC_EMOTIONS,
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
from spherefer.data.spec import DATASET_FORMATS, DatasetFormat, DataSpec, open_dataset, parse_data_spec
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
    "FERPLUS_VOTE_COLUMNS",
    "FERPlus",
    "FERPlusRow",
    "FER2013NewRow",
    "majority_emotion",
    "read_fer2013new",
    "BASIC_EMOTIONS",
    "compound_pair",
    "compound_name",
    "compound_sets",
    "is_unknown_face",
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
    "subject_split",
    "subject_kfold",
]
