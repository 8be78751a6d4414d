"""`python -m zgcheck` runs the command line, as the `zgcheck` script does."""
from zgcheck.cli import main

if __name__ == "__main__":
    main(prog_name="zgcheck")
