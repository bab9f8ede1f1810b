"""The data behind the tasks: SID's pair lists (``sid``), the synthetic scenes and their DNG
writer (``synth``, ``dng``), and the shipped files (``synth_test/``, ``sid_lists/``)."""
