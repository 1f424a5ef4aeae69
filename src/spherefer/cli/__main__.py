"""``python -m spherefer.cli`` (what ``torchrun -m spherefer.cli train`` runs)."""

from spherefer.cli import main

if __name__ == "__main__":
    main()
