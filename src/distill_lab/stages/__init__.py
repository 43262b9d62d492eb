"""The stages, one package each: ``generate -> train -> evaluate -> report``, and ``pipeline`` wiring them.

No stage imports another stage; they meet only through artifacts on disk (``distill_lab.artifacts``).
``common`` holds what every stage shares: the result type and the runner that writes the manifest;
``names`` the stage names and their packages.
"""
