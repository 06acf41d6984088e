"""HarmoVid Studio: the PySide6 desktop application. GUI only: every computation is asked of harmovid_engine."""
