{{%AUTOESCAPE context="HTML"}}
<section class="card narrow" aria-labelledby="login-h">
<h1 id="login-h">Log in</h1>
<form class="form" method="post" action="/login" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<input type="hidden" name="next" value="{{NEXT}}">
{{#FORM_ERROR}}
<p class="form-error" role="alert">{{MSG}}</p>
{{/FORM_ERROR}}
<div class="field">
<label for="email">Email</label>
<input type="email" id="email" name="email" value="{{EMAIL}}" autocomplete="email" spellcheck="false" required{{#ERR_EMAIL}} aria-invalid="true" aria-describedby="email-error"{{/ERR_EMAIL}}>
{{#ERR_EMAIL}}
<p class="field-error" id="email-error">{{MSG}}</p>
{{/ERR_EMAIL}}
</div>
<div class="field">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required{{#ERR_PASSWORD}} aria-invalid="true" aria-describedby="password-error"{{/ERR_PASSWORD}}>
{{#ERR_PASSWORD}}
<p class="field-error" id="password-error">{{MSG}}</p>
{{/ERR_PASSWORD}}
<p class="hint"><a href="/password/forgot">Forgot your password?</a></p>
</div>
<div class="actions">
<button type="submit" class="btn btn-primary btn-block">Log in</button>
</div>
</form>
<p class="card-foot">New here? <a href="/register">Create an account</a></p>
</section>
