import TapperCLI

await TapperMain.run()
