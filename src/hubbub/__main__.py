from hubbub.cli import app

app()
