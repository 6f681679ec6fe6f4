"""The motion prior: a small masked-diffusion model over windows of body motion (API filled in below)."""
