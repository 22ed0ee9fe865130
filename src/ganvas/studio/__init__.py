"""ganvas studio (a gradio web app over run directories) and the static report page.

    ganvas studio runs/            # http://127.0.0.1:7860
    ganvas report runs/a           # runs/a/report.html, self-contained

`report` needs nothing beyond ganvas; the app needs the `studio` extra (gradio).
"""
