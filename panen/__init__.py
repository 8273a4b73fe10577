"""The composition root: the web app, the worker, the command line and the migrations."""
