"""The HarmoVid video diffusion harmonizer (CogVideoX family): model, data recipe, training, inference."""
