from sikker.cli.main import main

main()
