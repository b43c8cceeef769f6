from streetpole.cli import main

main()
