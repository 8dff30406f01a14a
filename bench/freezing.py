"""Time per training step of each arm of the tricks study's freezing question (see study_arms.py).

``features`` has no training steps (one feature pass, then the head on cached features) and
``gradual`` steps like ``linear`` in its first epoch and like ``partial_2`` in its last (3 epochs, one
stage per epoch), so neither is timed here.

    python bench/freezing.py                       # 128 px, batch 32, as the study
    python bench/freezing.py --set data.transforms.crop=224 --set data.transforms.resize=224
"""

from study_arms import main

if __name__ == "__main__":
    main("configs/study_tricks", ("freezing",), ("features", "gradual"), __doc__)
