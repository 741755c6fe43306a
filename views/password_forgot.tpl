{{%AUTOESCAPE context="HTML"}}
<section class="card narrow" aria-labelledby="forgot-h">
<h1 id="forgot-h">Forgot your password?</h1>
<p class="lead">Enter the email of your account. We will send you an 8-digit code to set a new password.</p>
<form class="form" method="post" action="/password/forgot" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
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
<div class="actions">
<button type="submit" class="btn btn-primary btn-block">Send code</button>
</div>
</form>
<p class="card-foot">Already have a code? <a href="/password/reset">Enter it</a> · <a href="/login">Back to log in</a></p>
</section>
