"""Templates, static files and browser code (the WebRTC client)."""
