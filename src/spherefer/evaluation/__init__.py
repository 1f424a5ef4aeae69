"""Measuring a model: closed-set accuracy, calibration of the unknown score, the open-vocabulary
protocols and open-set rejection."""
