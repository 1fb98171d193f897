from lsr.cli import app

app(prog_name="lsr")
