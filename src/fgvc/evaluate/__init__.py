"""Evaluation: metrics, predictions and Kaggle submissions."""
