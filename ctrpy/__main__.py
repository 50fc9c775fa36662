from ctrpy.cli.main import run

run()
