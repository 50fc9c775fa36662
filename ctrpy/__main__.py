from ctrpy.cli import run

run()
