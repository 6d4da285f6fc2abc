from chatgate.cli.main import main

main()
