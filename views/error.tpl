{{%AUTOESCAPE context="HTML"}}
<section class="card narrow error-page" aria-labelledby="error-h">
<p class="error-status">Error {{STATUS}}</p>
<h1 id="error-h">{{REASON}}</h1>
<p class="error-message">{{MESSAGE}}</p>
<p class="muted">Request id: <code>{{REQUEST_ID}}</code></p>
<p class="muted">If you contact support about this, please quote the request id.</p>
<p class="actions"><a class="btn" href="/">Go to the start page</a></p>
</section>
