"""Two small cvat-aa functions to copy: an interactor and a tracker, with numpy only.

* :mod:`.colour_region`: an interaction function. A click on an object returns, as a mask,
  the region of similar colour around it.
* :mod:`.template_tracker`: a tracking function. It follows a rectangle from frame to frame by
  matching the pixels it held on the first frame.

They need no model and no weights, so the whole protocol (spec, ``preprocess_image``,
``detect``, ``init_tracking_state``, ``track``) is in plain sight. See the README beside
``pyproject.toml``.
"""
