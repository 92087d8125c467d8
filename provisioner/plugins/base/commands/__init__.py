"""The base roll's commands, one module per object. Modules import SQLAlchemy-using services
inside `run` only, so loading a module (for help or a listing) stays cheap."""
