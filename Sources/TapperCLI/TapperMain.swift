import ArgumentParser

/// The process entry point, so `main.swift` stays one line.
public enum TapperMain {
    public static func run() async {
        await TapperCommand.main()
    }
}
