"""Remote training backends (ComfyUI, Replicate) behind one job lifecycle."""
