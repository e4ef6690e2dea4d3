"""Backend worker processes: load a handler and run batches sent by the frontend."""
