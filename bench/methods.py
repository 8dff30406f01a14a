"""Time per training step of every fine-grained method of configs/study_fgvc_methods against the plain
model, alternating in one process (see study_arms.py): what docs/methods.md's "time per step" is.

    python bench/methods.py                        # both questions, 128 px, batch 32, as the study
    python bench/methods.py --question parts_and_attention --steps 6
"""

from study_arms import main

if __name__ == "__main__":
    main("configs/study_fgvc_methods", ("pooling_and_losses", "parts_and_attention"), (), __doc__)
