{{%AUTOESCAPE context="HTML"}}
<section class="card narrow" aria-labelledby="login2fa-h">
<h1 id="login2fa-h">Two-factor sign-in</h1>
<p class="lead">Enter the 6-digit code your authenticator app shows now, or one of your recovery codes.</p>
<form class="form" method="post" action="/login/2fa" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
{{#FORM_ERROR}}
<p class="form-error" role="alert">{{MSG}}</p>
{{/FORM_ERROR}}
<div class="field">
<label for="code">Code</label>
<input type="text" id="code" name="code" class="input-code" autocomplete="one-time-code" spellcheck="false" autofocus required>
</div>
<div class="actions">
<button type="submit" class="btn btn-primary btn-block">Continue</button>
</div>
</form>
<p class="card-foot"><a href="/login">Start again</a></p>
</section>
