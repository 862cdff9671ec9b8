/// The Swagger UI page at `--docs-path`: the vendored bundle (``DocsAssets``) pointed at the
/// merged document. Its `servers` entry is the gateway, so "Try it out" goes through it.
enum DocsPage {
    /// - Parameters:
    ///   - openapiURL: the merged document's path (`--openapi-path`).
    ///   - docsPath: where the page and its assets are (`--docs-path`).
    static func html(openapiURL: String, docsPath: String) -> String {
        // Both paths are validated at start ([A-Za-z0-9._~/-] only), so they need no escaping.
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>API docs · Tapper gateway</title>
        <link rel="stylesheet" href="\(docsPath)/swagger-ui.css">
        <style>body { margin: 0; } .topbar { display: none; }</style>
        </head>
        <body>
        <div id="swagger-ui"></div>
        <script src="\(docsPath)/swagger-ui-bundle.js"></script>
        <script>
        window.ui = SwaggerUIBundle({
          url: "\(openapiURL)",
          dom_id: "#swagger-ui",
          deepLinking: true,
          displayRequestDuration: true,
          presets: [SwaggerUIBundle.presets.apis],
          layout: "BaseLayout"
        });
        </script>
        </body>
        </html>
        """
    }
}
