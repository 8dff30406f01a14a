"""The web demo (``fgvc app``): upload images to a trained run, see its top classes, what it looks at,
and its model card. ``answers`` is the plain logic; ``web`` the Gradio page over it."""
