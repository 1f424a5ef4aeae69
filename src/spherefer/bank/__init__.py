"""The class-center bank, the paper's open vocabulary: one record per class, how faces are scored
against it, the decision rules, its file format and history, enrolment with its harm estimate,
adaptation to a new setting and the unknown score."""
